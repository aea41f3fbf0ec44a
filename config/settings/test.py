"""pytest. Same database engine as DATABASE_URL says (PostgreSQL in CI), fast hashing."""

from .base import *  # noqa: F403
from .base import VAR_DIR, env

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

# The demo clock, one file per pytest-xdist process (commands a test runs in a subprocess
# inherit PYTEST_XDIST_WORKER and see the same one); tests/conftest.py resets it around every
# test, so a moved clock never leaks into the next test.
DEMO_CLOCK_FILE = str(VAR_DIR / f"test-clock-{env.str('PYTEST_XDIST_WORKER', default='main')}.json")

# Tests never reach Stripe, whatever keys a developer's .env holds: the offline Stripe
# (tests/billing/conftest.py serves it on a free port and points the client at it).
STRIPE_LIVE_MODE = False
STRIPE_LIVE_SECRET_KEY = ""
STRIPE_TEST_SECRET_KEY = "sk_test_OfflineStandInNotASecret0000"
OFFLINE_STRIPE = True
STRIPE_API_HOST = "http://127.0.0.1:9"  # nothing listens: a test that forgets the fixture fails
SILENCED_SYSTEM_CHECKS = ["djstripe.W002"]

# The webhook tests deliver to a real receiver on 127.0.0.1 over http; the tests of the rule
# itself (tests/webhooks/test_destinations.py) set these back per test.
WEBHOOK_REQUIRE_HTTPS = False
WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.0/8", "::1"]

# The ledger refuses TRUNCATE (apps/wallets/models.py), and the test runner empties the tables
# after a transactional test with TRUNCATE: on PostgreSQL, the test connections say it may.
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    DATABASES["default"].setdefault("OPTIONS", {})["options"] = (
        "-c creditdesk.ledger_truncate=allow"
    )
