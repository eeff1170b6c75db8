"""The project's routes; each view's docstring says what it streams."""

import django_eventstream
from django.urls import include, path

from server.apps.django_streams import bodies, library, views

urlpatterns = [
    path("", views.plain),
    path("async-plain", views.async_plain),
    path("seed-countdown", views.seed_countdown),
    path("seed-countdown-async", views.seed_countdown_async),
    path("slow", views.slow),
    path("countdown", views.countdown),
    path("tokens", views.tokens),
    path("events", views.events),
    path("wrong-kind/countdown", views.wrong_kind_countdown),
    path("stats", views.stats),
    path("download", bodies.download),
    path("log-tail", bodies.log_tail),
    path("library/events", include(django_eventstream.urls), {"channels": [library.CHANNEL]}),
    path("library/publish", library.publish),
]
