"""The webhooks' scheduled jobs (apps/jobs/registry.py)."""

from apps.jobs.registry import register

from .alerts import check_balance_alerts
from .services import retry_due_deliveries

register("check_balance_alerts", check_balance_alerts, order=40)
register("retry_webhook_deliveries", retry_due_deliveries, order=50)
