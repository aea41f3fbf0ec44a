import logging

from django.db import connection
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from config.celery import app as celery_app

logger = logging.getLogger(__name__)


def _database():
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return "ok"
    except Exception as exc:  # noqa: BLE001 - any failure means unreachable
        logger.warning("healthz: database unreachable: %s", exc)
        return "unreachable"


def _broker():
    try:
        with celery_app.connection_for_write(connect_timeout=2) as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=3)
        return "ok"
    except Exception as exc:  # noqa: BLE001 - any failure means unreachable
        logger.warning("healthz: broker unreachable: %s", exc)
        return "unreachable"


@never_cache
@require_GET
def healthz(request):
    """Liveness for load balancers and `make run`: is the database and the broker reachable?"""
    checks = {"database": _database(), "broker": _broker()}
    healthy = all(value == "ok" for value in checks.values())
    return JsonResponse(
        {"status": "ok" if healthy else "unavailable", **checks}, status=200 if healthy else 503
    )
