"""Celery tasks for the period jobs: thin callers of `run_job`, scheduled by beat from the
database (migration periods/0002; staff edit the schedules in the admin)."""

from celery import shared_task
from django.utils.dateparse import parse_datetime

from .jobs import run_job

# A run works in chunks that each commit, so a time limit costs at most the chunk it cuts.
LIMITS = {"soft_time_limit": 15 * 60, "time_limit": 16 * 60, "acks_late": True}


def _run(task, job, now):
    return run_job(
        job=job,
        trigger="beat",
        now=parse_datetime(now) if now else None,
        task_id=task.request.id or "",
    ).counts


@shared_task(bind=True, name="periods.renew_due_subscriptions", **LIMITS)
def renew_due_subscriptions(self, now=None):
    return _run(self, "renew_due_subscriptions", now)


@shared_task(bind=True, name="periods.expire_grants", **LIMITS)
def expire_grants(self, now=None):
    return _run(self, "expire_grants", now)


@shared_task(bind=True, name="periods.release_expired_reservations", **LIMITS)
def release_expired_reservations(self, now=None):
    return _run(self, "release_expired_reservations", now)


@shared_task(bind=True, name="periods.check_balance_alerts", **LIMITS)
def check_balance_alerts(self, now=None):
    return _run(self, "check_balance_alerts", now)


@shared_task(bind=True, name="periods.retry_webhook_deliveries", **LIMITS)
def retry_webhook_deliveries(self, now=None):
    return _run(self, "retry_webhook_deliveries", now)


@shared_task(bind=True, name="periods.suspend_past_due_accounts", **LIMITS)
def suspend_past_due_accounts(self, now=None):
    return _run(self, "suspend_past_due_accounts", now)


@shared_task(bind=True, name="periods.send_overage_charges", **LIMITS)
def send_overage_charges(self, now=None):
    return _run(self, "send_overage_charges", now)


@shared_task(bind=True, name="periods.run_auto_recharges", **LIMITS)
def run_auto_recharges(self, now=None):
    return _run(self, "run_auto_recharges", now)


@shared_task(bind=True, name="periods.publish_outbox", **LIMITS)
def publish_outbox(self, now=None):
    return _run(self, "publish_outbox", now)
