"""Developer machine: `make run`. Debug on, an insecure key of its own, SQLite by default."""

from .base import *  # noqa: F403
from .base import VAR_DIR, env

DEBUG = env.bool("DEBUG", default=True)
SECRET_KEY = env("SECRET_KEY", default="django-insecure-local-only-creditdesk-development-key")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])
# A receiver on this machine may listen on plain http (loopback still needs
# WEBHOOK_ALLOWED_NETWORKS=127.0.0.0/8,::1 in .env).
WEBHOOK_REQUIRE_HTTPS = False

# Development tools `make run` uses (devtools/): the offline Stripe (`manage.py offline_stripe`,
# the Procfile's `stripe`) and the demo data (`manage.py setup_demo`). Never in production.
INSTALLED_APPS = [*INSTALLED_APPS, "devtools.offline_stripe", "devtools.demo"]

# `manage.py advance_clock --days 31` moves the demo's clock (docs/periods.md); `make clean`
# (which removes var/) or `advance_clock --reset` brings it back to real time.
DEMO_CLOCK_FILE = str(VAR_DIR / "demo_clock.json")
