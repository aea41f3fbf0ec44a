"""Settings shared by every environment. Everything that differs between machines comes from
the environment (or a `.env` file beside manage.py); `.env.example` documents each variable."""

import ipaddress
from datetime import timedelta
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = BASE_DIR / "var"

env = environ.Env()
if (BASE_DIR / ".env").is_file():
    environ.Env.read_env(BASE_DIR / ".env")

DEBUG = env.bool("DEBUG", default=False)
SECRET_KEY = env("SECRET_KEY", default=None)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=[])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
SITE_URL = env("SITE_URL", default="http://127.0.0.1:8000")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "simple_history",
    "axes",
    "django_celery_beat",
    "djstripe",
    "pgtrigger",  # the ledger's append-only triggers (apps/wallets/models.py), PostgreSQL
    "apps.core",
    "apps.jobs",
    "apps.catalog",
    "apps.accounts",
    "apps.wallets",
    "apps.usage",
    "apps.periods",
    "apps.revenue",
    "apps.webhooks",
    "apps.billing",
    "apps.simulation",
    "apps.api",
]

MIDDLEWARE = [
    "apps.core.metrics.RequestMetricsMiddleware",  # first: it counts every answer, as given
    "apps.core.middleware.RequestIdMiddleware",
    "apps.api.middleware.BodySizeLimitMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "simple_history.middleware.HistoryRequestMiddleware",
    "axes.middleware.AxesMiddleware",  # last, as django-axes asks
]

# Admin logins are throttled against password guessing (django-axes): after
# ADMIN_LOGIN_FAILURE_LIMIT wrong passwords for one username from one address, that pair is
# locked out for ADMIN_LOGIN_COOLOFF_MINUTES (429 page); a success resets the count. Attempts
# are listed in the admin under "Axes" (superusers). The API's keys are not passwords and are
# not counted here.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env.int("ADMIN_LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("ADMIN_LOGIN_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "admin/locked_out.html"
AXES_CLIENT_IP_CALLABLE = "apps.core.middleware.client_ip"
# Proxies in front of the app that append to X-Forwarded-For (0: use the peer address).
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
# DATABASE_URL unset -> an SQLite file, tuned so that concurrent writers queue instead of
# failing: WAL lets readers run beside the writer, IMMEDIATE takes the write lock at BEGIN (no
# lock upgrade deadlocks), and the busy timeout makes a second writer wait for the first.
DATABASES = {
    "default": env.db(
        "DATABASE_URL", default=f"sqlite:///{env('SQLITE_PATH', default=BASE_DIR / 'db.sqlite3')}"
    ),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "transaction_mode": "IMMEDIATE",
            "timeout": 30,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
# "transaction": DATABASE_URL is a pooler in transaction mode (PgBouncer's pool_mode =
# transaction), where each transaction may get another server connection: nothing may live
# on one between transactions. So no server-side cursor (QuerySet.iterator() would declare
# one WITH HOLD and fetch from it in later transactions) and no prepared statement (Django's
# cursors bind on the client and prepare nothing; this keeps psycopg from it all the same).
# Jobs and services keep no session state: their locks are transaction-scoped.
DATABASE_POOLER = env("DATABASE_POOLER", default="")
if DATABASE_POOLER not in ("", "transaction"):
    raise ImproperlyConfigured('DATABASE_POOLER is "transaction" or unset.')
if DATABASE_POOLER and DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = True
    DATABASES["default"].setdefault("OPTIONS", {})["prepare_threshold"] = None
# Read replicas (docs/scaling.md): streaming replicas of DATABASE_URL, comma-separated. Reads
# that decide no money (history, reports, exports, the billing page, admin lists) go to the
# first one whose replay lag is within DATABASE_REPLICA_MAX_LAG seconds (checked at most every
# DATABASE_REPLICA_CHECK_INTERVAL seconds per process); none within it: the primary. Check,
# consume, every write and everything inside a transaction stay on the primary
# (apps/core/replicas.py).
DATABASE_REPLICAS = []
for _n, _url in enumerate(env.list("DATABASE_REPLICA_URLS", default=[]), 1):
    if DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
        raise ImproperlyConfigured("DATABASE_REPLICA_URLS needs PostgreSQL as DATABASE_URL.")
    _replica = env.db_url_config(_url)
    _replica.update({key: value for key, value in DATABASES["default"].items()
                     if key in ("CONN_MAX_AGE", "CONN_HEALTH_CHECKS",
                                "DISABLE_SERVER_SIDE_CURSORS")})  # fmt: skip
    # A replica that does not answer is skipped; do not wait long to find out.
    _replica["OPTIONS"] = {**DATABASES["default"].get("OPTIONS", {}),
                           **_replica.get("OPTIONS", {}), "connect_timeout": 2}  # fmt: skip
    # Under test, a replica is the test database itself (no second test database to make).
    _replica["TEST"] = {"MIRROR": "default"}
    DATABASES[f"replica_{_n}"] = _replica
    DATABASE_REPLICAS.append(f"replica_{_n}")
DATABASE_REPLICA_MAX_LAG = env.float("DATABASE_REPLICA_MAX_LAG", default=5.0)
DATABASE_REPLICA_CHECK_INTERVAL = env.float("DATABASE_REPLICA_CHECK_INTERVAL", default=1.0)
DATABASE_ROUTERS = ["apps.core.replicas.ReplicaRouter"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# On PostgreSQL, consume and consume_batch run as one database function call each
# (apps/usage/fast_path.py). False forces the portable Python path everywhere.
CONSUME_FAST_PATH = env.bool("CONSUME_FAST_PATH", default=True)
# Answer consume and check in front of Django's request cycle (apps/api/fast_lane.py), on
# PostgreSQL with CONSUME_FAST_PATH (the lane's one statement is a database function).
API_FAST_LANE = env.bool("API_FAST_LANE", default=True)
# Stripe-backed subscriptions renew on Stripe's invoice.paid; the renewal job catches up the
# ones whose event has not come this long after their period ended (docs/periods.md).
STRIPE_RENEWAL_GRACE_MINUTES = env.int("STRIPE_RENEWAL_GRACE_MINUTES", default=60)
# Stripe through dj-stripe (apps/billing, docs/billing.md). Keys from the environment; with
# none, the offline Stripe (devtools/offline_stripe/, `manage.py offline_stripe` under the
# local settings) stands in for Stripe's API on OFFLINE_STRIPE_PORT, and nothing reaches Stripe.
STRIPE_LIVE_MODE = env.bool("STRIPE_LIVE_MODE", default=False)
STRIPE_TEST_SECRET_KEY = env("STRIPE_TEST_SECRET_KEY", default="")
STRIPE_LIVE_SECRET_KEY = env("STRIPE_LIVE_SECRET_KEY", default="")
OFFLINE_STRIPE = not (STRIPE_TEST_SECRET_KEY or STRIPE_LIVE_SECRET_KEY)
OFFLINE_STRIPE_PORT = env.int("OFFLINE_STRIPE_PORT", default=12111)
OFFLINE_STRIPE_STATE = env("OFFLINE_STRIPE_STATE", default=str(VAR_DIR / "offline_stripe.json"))
if OFFLINE_STRIPE:
    STRIPE_API_HOST = f"http://127.0.0.1:{OFFLINE_STRIPE_PORT}"
    # Not a secret: the stand-in accepts any key shaped like Stripe's (dj-stripe checks it).
    STRIPE_TEST_SECRET_KEY = "sk_test_OfflineStandInNotASecret0000"
    SILENCED_SYSTEM_CHECKS = ["djstripe.W002"]  # "STRIPE_API_HOST set": here it is meant to be
# Days a subscription may stay past due (a failed renewal payment) before consumption is
# blocked with account_suspended; paying the invoice lifts it.
STRIPE_PAST_DUE_GRACE_DAYS = env.int("STRIPE_PAST_DUE_GRACE_DAYS", default=3)
# The demo clock (apps/core/clock.py, `manage.py advance_clock`): a file holding how far the
# clock is moved ahead of real time. Only the local and test settings name one; without it the
# clock is real time and cannot be moved.
DEMO_CLOCK_FILE = None
# Minutes a hosted billing page link (POST accounts/{id}/billing-link) keeps working.
BILLING_LINK_MAX_AGE_MINUTES = env.int("BILLING_LINK_MAX_AGE_MINUTES", default=60)
DJSTRIPE_FOREIGN_KEY_TO_FIELD = "id"
DJSTRIPE_SUBSCRIBER_MODEL = "accounts.Account"
DJSTRIPE_WEBHOOK_VALIDATION = "verify_signature"  # Stripe's signature, no call back to Stripe
# Connections a period job works on at once (threads claiming chunks with SKIP LOCKED).
PERIOD_JOB_WORKERS = env.int("PERIOD_JOB_WORKERS", default=2)
# Outgoing webhooks (apps/webhooks/destinations.py, docs/webhooks.md): endpoint URLs must use
# https (the local and test settings allow http), and may not point at loopback, private,
# link-local, multicast, reserved or cloud metadata addresses unless their network is listed
# here (comma-separated networks or addresses in the environment, e.g. 10.20.0.0/16).
WEBHOOK_REQUIRE_HTTPS = True
WEBHOOK_ALLOWED_NETWORKS = env.list("WEBHOOK_ALLOWED_NETWORKS", default=[])

# --- Cache ------------------------------------------------------------------------------------
REDIS_URL = env("REDIS_URL", default=None)
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- Celery -----------------------------------------------------------------------------------
# REDIS_URL unset -> kombu's filesystem transport under var/, so a worker and beat run with no
# server at all (the `make run` default). Production sets REDIS_URL.
# Seconds a publish may wait on the broker (connect, and each reply): a hung Redis costs a
# request at most about three times this (a try, a reconnect, a retry), never minutes. What
# cannot be published waits in the outbox (apps/core/outbox.py) until the broker is back.
TASK_PUBLISH_TIMEOUT = env.float("TASK_PUBLISH_TIMEOUT", default=1.0)
REDIS_BROKER_TRANSPORT_OPTIONS = {
    "socket_timeout": TASK_PUBLISH_TIMEOUT,
    "socket_connect_timeout": TASK_PUBLISH_TIMEOUT,
}
CELERY_BROKER_CONNECTION_TIMEOUT = TASK_PUBLISH_TIMEOUT
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    CELERY_BROKER_TRANSPORT_OPTIONS = REDIS_BROKER_TRANSPORT_OPTIONS
else:
    _broker_dir = VAR_DIR / "celery-broker"
    for _sub in ("queue", "processed", "control"):
        (_broker_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_URL = "filesystem://"
    # Every folder the transport uses, named: kombu's defaults are relative to the working
    # directory (its exchange tables went to ./control when control_folder was left out).
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
CELERY_RESULT_BACKEND = env("CELERY_RESULT_BACKEND", default=REDIS_URL)
CELERY_TASK_IGNORE_RESULT = not CELERY_RESULT_BACKEND
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=30 * 60)
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=25 * 60)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# django-celery-beat's DatabaseScheduler, sending only while it holds the beat lock: a second
# beat stands by (apps/jobs/beat.py). Behind a transaction-mode pooler the lock needs a direct
# URL of the database.
CELERY_BEAT_SCHEDULER = "apps.jobs.beat:SingleBeatScheduler"
BEAT_LOCK_DATABASE_URL = env("BEAT_LOCK_DATABASE_URL", default="")
CELERY_TIMEZONE = "UTC"

# --- Auth, i18n, static -------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = env("STATIC_ROOT", default=None)  # production: collectstatic target
WHITENOISE_USE_FINDERS = True  # serve app static files without collectstatic (local, tests)

# --- REST API ---------------------------------------------------------------------------------
API_MAX_BODY_BYTES = 1024 * 1024
# Requests per minute per API key unless the key sets its own (counted in the cache: Redis
# when REDIS_URL is set, so all web processes share the count; local memory otherwise).
API_RATE_LIMIT = env.int("API_RATE_LIMIT", default=60000)
DATA_UPLOAD_MAX_MEMORY_SIZE = API_MAX_BODY_BYTES

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["apps.api.authentication.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["apps.api.permissions.HasApiKey"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["apps.api.parsers.ExactJSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "apps.api.errors.exception_handler",
    "DEFAULT_THROTTLE_CLASSES": ["apps.api.throttling.ApiKeyRateThrottle"],
    "UNAUTHENTICATED_USER": None,
    "COERCE_DECIMAL_TO_STRING": True,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "CreditDesk API",
    "DESCRIPTION": "Check and consume credits, read balances and history, start checkouts.",
    "VERSION": "1.0.0",
    # 3.1: JSON Schema proper, and `webhooks` to describe the events CreditDesk sends.
    "OAS_VERSION": "3.1.0",
    "WEBHOOKS": "apps.api.webhook_events.WEBHOOKS",  # one import: the list it holds
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "apps.api.schema.add_error_responses",
        "apps.api.schema.add_catalog_codes",
        "apps.api.schema.add_links",
        "apps.api.schema.add_scopes",
    ],
    "COMPONENT_SPLIT_REQUEST": True,
}

# --- Metrics and logs (docs/metrics.md) ------------------------------------------------------
# Prometheus's scrape at /metrics. Off, and for every address not on METRICS_ALLOWED_IPS
# (comma-separated addresses or networks: the client's address as TRUSTED_PROXY_COUNT says),
# it answers the 404 of a path that does not exist.
METRICS_ENABLED = env.bool("METRICS_ENABLED", default=False)
METRICS_ALLOWED_IPS = env.list("METRICS_ALLOWED_IPS", default=[])
for _network in METRICS_ALLOWED_IPS:
    try:
        ipaddress.ip_network(_network, strict=False)
    except ValueError:
        raise ImproperlyConfigured(
            f"METRICS_ALLOWED_IPS: {_network!r} is no address or network."
        ) from None
# Several web workers (granian, gunicorn): a directory they all write their counters to, so
# that the scrape, whichever worker answers it, sums them. prometheus_client reads the
# variable itself, from the environment (a .env file puts it there). Empty it before the
# workers start.
PROMETHEUS_MULTIPROC_DIR = env("PROMETHEUS_MULTIPROC_DIR", default="")
if PROMETHEUS_MULTIPROC_DIR:
    Path(PROMETHEUS_MULTIPROC_DIR).mkdir(parents=True, exist_ok=True)


def log_format(*, default):
    """LOG_FORMAT: "json" (one object a line, for a log shipper) or "plain" (for people)."""
    value = env("LOG_FORMAT", default=default)
    if value not in ("json", "plain"):
        raise ImproperlyConfigured('LOG_FORMAT is "json" or "plain".')
    return value


LOG_FORMAT = log_format(default="plain")  # production's default: json
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "apps.core.logging.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["request_id"],
        }
    },
    "filters": {
        "request_id": {"()": "apps.core.logging.RequestIdFilter"},
        "without_traceback": {"()": "apps.core.logging.WithoutTraceback"},
    },
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
    "loggers": {"django.security.DisallowedHost": {"filters": ["without_traceback"]}},
}
