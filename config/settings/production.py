"""Production. Refuses to start without SECRET_KEY, DATABASE_URL and ALLOWED_HOSTS, and is
clean under `manage.py check --deploy`."""

import os

from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F403
from .base import BASE_DIR, LOGGING, env, log_format

_missing = [
    name for name in ("SECRET_KEY", "DATABASE_URL", "ALLOWED_HOSTS") if not os.environ.get(name)
]
if _missing:
    raise ImproperlyConfigured(
        f"Production settings need these environment variables: {', '.join(_missing)}"
    )

DEBUG = False
SECRET_KEY = env("SECRET_KEY")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS")

# One JSON object a line, with the request's id on every line logged while serving it.
LOG_FORMAT = log_format(default="json")
LOGGING["handlers"]["console"]["formatter"] = LOG_FORMAT

# The clock is real time: no demo clock file, `manage.py advance_clock` refuses.
DEMO_CLOCK_FILE = None

# TLS is terminated in front of the app; set SECURE_PROXY_SSL_HEADER_NAME when a proxy does it.
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
if env("SECURE_PROXY_SSL_HEADER_NAME", default=""):
    SECURE_PROXY_SSL_HEADER = (env("SECURE_PROXY_SSL_HEADER_NAME"), "https")
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=60 * 60 * 24 * 365)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=True)
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True

STATIC_ROOT = env("STATIC_ROOT", default=str(BASE_DIR / "staticfiles"))
WHITENOISE_USE_FINDERS = False
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

# The offline Stripe is for demos and tests: production talks to Stripe, or (no keys) takes
# no payments — checkout then answers payment_provider_error.
if OFFLINE_STRIPE:
    del STRIPE_API_HOST  # noqa: F821
    del SILENCED_SYSTEM_CHECKS  # noqa: F821
    OFFLINE_STRIPE = False
    STRIPE_TEST_SECRET_KEY = ""
