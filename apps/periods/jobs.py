"""The scheduled jobs by name, and how a run of one is recorded (JobRun)."""

import traceback

from django.utils import timezone

from apps.billing.overage import send_overage_charges
from apps.billing.recharge import run_auto_recharges
from apps.billing.subscriptions import suspend_past_due_accounts
from apps.core.outbox import publish_outbox
from apps.usage.services import release_expired_reservations
from apps.wallets.services import expire_grants
from apps.webhooks.alerts import check_balance_alerts
from apps.webhooks.services import retry_due_deliveries

from .models import JobRun
from .services import renew_due_subscriptions

# In the order `run_period_jobs` runs them: renewal first, so that the expiry job finds only
# what renewal did not close.
JOBS = {
    "renew_due_subscriptions": renew_due_subscriptions,
    "expire_grants": expire_grants,
    "release_expired_reservations": release_expired_reservations,
    "check_balance_alerts": check_balance_alerts,
    "retry_webhook_deliveries": retry_due_deliveries,
    "suspend_past_due_accounts": suspend_past_due_accounts,
    "send_overage_charges": send_overage_charges,
    "run_auto_recharges": run_auto_recharges,
    "publish_outbox": publish_outbox,  # last: sends what the jobs above could not publish
}


def run_job(*, job, trigger, now=None, task_id="", chunk_size=None):
    """Run one job, recording it as a JobRun whose counts are saved after every chunk (a
    run that dies shows how far it got). Returns the JobRun; re-raises what stopped it."""
    function = JOBS[job]
    as_of = now or timezone.now()
    run = JobRun.objects.create(job=job, trigger=trigger, as_of=as_of, task_id=task_id or "")

    def progress(counts):
        JobRun.objects.filter(pk=run.pk).update(counts=counts.as_dict())

    options = {"chunk_size": chunk_size} if chunk_size else {}
    try:
        counts = function(now=as_of, on_chunk=progress, **options)
    except BaseException as error:  # a time limit or a kill too: record it, then stop
        run.status = JobRun.Status.FAILED
        run.error = "".join(traceback.format_exception(error))[-4000:]
        run.finished_at = timezone.now()
        run.save(update_fields=["status", "error", "finished_at"])
        raise
    run.counts = counts.as_dict()
    run.status = JobRun.Status.FAILED if counts.failures else JobRun.Status.SUCCEEDED
    run.finished_at = timezone.now()
    run.save(update_fields=["counts", "status", "finished_at"])
    return run
