"""A deliberately small Django app: no database, no sessions; the team is named by a header.
CreditDesk's client reads CREDITDESK_API_KEY and CREDITDESK_BASE_URL from here."""

import os
import secrets

DEBUG = os.environ.get("NOTES_DEBUG") == "1"
SECRET_KEY = os.environ.get("NOTES_SECRET_KEY") or secrets.token_urlsafe(50)
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
ROOT_URLCONF = "notes.urls"
INSTALLED_APPS = []
MIDDLEWARE = ["django.middleware.common.CommonMiddleware"]
DATABASES = {}
USE_TZ = True

CREDITDESK_API_KEY = os.environ.get("CREDITDESK_API_KEY")
CREDITDESK_BASE_URL = os.environ.get("CREDITDESK_BASE_URL", "http://127.0.0.1:8000")
CREDITDESK_WEBHOOK_SECRET = os.environ.get("CREDITDESK_WEBHOOK_SECRET")  # the endpoint's whsec_…
