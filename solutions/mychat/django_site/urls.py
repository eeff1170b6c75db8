"""The site's one route."""

from django.urls import path

from mychat.django_site import views

urlpatterns = [path("countdown", views.countdown)]
