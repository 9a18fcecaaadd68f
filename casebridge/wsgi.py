"""WSGI entry point (gunicorn): sync streaming iterators are served without buffering."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "casebridge.settings")
application = get_wsgi_application()
