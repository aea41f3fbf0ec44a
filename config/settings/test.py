"""pytest. Same database engine as DATABASE_URL says (PostgreSQL in CI), fast hashing."""

from .base import *  # noqa: F403
from .base import env

DEBUG = False
SECRET_KEY = env("SECRET_KEY", default="test-only-secret-key-not-used-anywhere-else-0123456789")
ALLOWED_HOSTS = ["testserver", "127.0.0.1", "localhost"]
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

# Each pytest-xdist process has its own test database, so it gets its own queue too: a real
# worker started by one process must not run tasks another process sent.
CELERY_TASK_DEFAULT_QUEUE = f"creditdesk-test-{env.str('PYTEST_XDIST_WORKER', default='main')}"
