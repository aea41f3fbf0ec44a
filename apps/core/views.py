import logging

from django.conf import settings
from django.db import connection
from django.http import Http404, HttpResponse, HttpResponseNotAllowed, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from config.celery import app as celery_app

from .metrics import CONTENT_TYPE, exposition, may_scrape
from .middleware import client_ip

logger = logging.getLogger(__name__)

BROKER_DOWN = "broker unreachable: tasks wait in the outbox until it is back"


def _database():
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return "ok"
    except Exception as exc:  # noqa: BLE001 - any failure means unreachable
        logger.warning("health: database unreachable: %s", exc)
        return "unreachable"


def _broker():
    """Bounded by TASK_PUBLISH_TIMEOUT (the broker's socket timeouts, one try)."""
    try:
        with celery_app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0)
        return "ok"
    except Exception as exc:  # noqa: BLE001 - any failure means unreachable
        logger.warning("readyz: broker unreachable: %s", exc)
        return "unreachable"


def _answer(database, *, status="ok", **fields):
    status = status if database == "ok" else "unavailable"
    return JsonResponse(
        {"status": status, "database": database, **fields},
        status=200 if database == "ok" else 503,
    )


@never_cache
@require_GET
def healthz(request):
    """Liveness: the process answers and reaches its database (503 if not). The broker is not
    asked: a Redis blip must not make a load balancer restart or drop every node."""
    return _answer(_database())


@never_cache
@require_GET
def readyz(request):
    """Readiness: the database decides (503 without it). The broker is reported, and when it
    is down the answer stays 200 with a warning: requests are served, tasks wait in the outbox
    (apps/core/outbox.py) and are published when it is back."""
    broker = _broker()
    warnings = [] if broker == "ok" else [BROKER_DOWN]
    return _answer(
        _database(), status="ok" if broker == "ok" else "degraded", broker=broker,
        warnings=warnings,
    )  # fmt: skip


@never_cache
def metrics(request):
    """Prometheus's scrape (docs/metrics.md). With METRICS_ENABLED off, or for an address not
    on METRICS_ALLOWED_IPS, the very 404 of a path that does not exist: to the public there is
    no such endpoint."""
    if not (settings.METRICS_ENABLED and may_scrape(client_ip(request))):
        raise Http404
    if request.method not in ("GET", "HEAD"):
        return HttpResponseNotAllowed(["GET", "HEAD"])
    return HttpResponse(exposition(), content_type=CONTENT_TYPE)
