"""The webhook deliveries as Prometheus sees them (docs/metrics.md), read at scrape time:
what waits to be sent, what is failing, and what gave up. Each is one query on a partial
index (pending, or gave up), so it stays cheap however many deliveries have succeeded."""

from datetime import timedelta

from django.db.models import Count, Min, Q

from apps.core import clock
from apps.core.metrics import gauge

from .models import WebhookDelivery

RECENT = timedelta(hours=1)


def delivery_gauges():
    now = clock.now()  # the deliveries' times are the deployment's clock
    pending = WebhookDelivery.objects.filter(status=WebhookDelivery.Status.PENDING).aggregate(
        pending=Count("pk"),
        due=Count("pk", filter=Q(next_attempt_at__lte=now)),
        retrying=Count("pk", filter=Q(attempts__gt=0)),
        oldest_due=Min("next_attempt_at", filter=Q(next_attempt_at__lte=now)),
    )
    gave_up = WebhookDelivery.objects.filter(
        status=WebhookDelivery.Status.FAILED, last_attempt_at__gte=now - RECENT
    ).count()
    families = []
    for name, documentation, value in [
        ("pending", "Deliveries not yet delivered nor given up.", pending["pending"]),
        ("due", "Pending deliveries whose next attempt is due now.", pending["due"]),
        ("retrying", "Pending deliveries whose last attempt failed.", pending["retrying"]),
        (
            "gave_up_last_hour",
            "Deliveries that gave up (every attempt failed) in the last "
            "hour: their events never reached the receiver.",
            gave_up,
        ),
    ]:
        family = gauge(f"creditdesk_webhook_deliveries_{name}", documentation)
        family.add_metric([], value)
        families.append(family)
    oldest = pending["oldest_due"]
    late = gauge(
        "creditdesk_webhook_oldest_due_seconds",
        "How long the longest-waiting due delivery has been due (0: none).",
    )
    late.add_metric([], 0 if oldest is None else (now - oldest).total_seconds())
    return [*families, late]
