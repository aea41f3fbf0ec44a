"""Running management commands in tests: in this process (`run`), or as `manage.py` in a
process of its own under settings chosen by the environment (`manage`: settings are read once
per process, so production's cannot be tried inside this one)."""

import os
import subprocess
import sys
from io import StringIO

from django.conf import settings
from django.core.management import call_command

BASE_ENV = {k: v for k, v in os.environ.items() if k not in {
    "SECRET_KEY", "DATABASE_URL", "ALLOWED_HOSTS", "REDIS_URL", "DJANGO_SETTINGS_MODULE", "DEBUG",
}}  # fmt: skip
PRODUCTION_ENV = {
    **BASE_ENV,
    "DJANGO_SETTINGS_MODULE": "config.settings.production",
    "SECRET_KEY": "a-production-like-secret-key-for-the-deploy-check-0123456789-abcdefghijkl",
    "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/postgres",
    "ALLOWED_HOSTS": "credits.example.com",
}


def manage(*args, env):
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def run(*args):
    """A command run here; what it printed."""
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def write(tmp_path, text, name="catalog.yaml"):
    """A file for a command to read (a catalog file by default); its path."""
    path = tmp_path / name
    path.write_text(text)
    return str(path)
