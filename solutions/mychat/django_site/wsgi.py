"""For gunicorn (WSGI): `gunicorn mychat.django_site.wsgi:application`."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mychat.django_site.settings")
application = get_wsgi_application()
