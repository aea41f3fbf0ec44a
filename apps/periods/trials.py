"""The trial.ending notice (docs/periods.md, "Trials"): a scheduled job that tells the
company's apps, once per trial, that a trial ends within `NOTICE` (so they can ask the
customer to stay). Trials themselves start in `put_account_on_plan` and convert or end in
the renewal (services.py)."""

from datetime import timedelta

from django.db import transaction

from apps.accounts.models import Subscription
from apps.core import clock
from apps.jobs.counts import JobCounts
from apps.webhooks.services import record_events

NOTICE = timedelta(days=3)


def notify_trials_ending(*, now=None, chunk_size=500, on_chunk=None):
    """Record trial.ending for each trial that ends within NOTICE of `now` and has not had
    it. A chunk per transaction; the rows are claimed with SKIP LOCKED and marked sent in
    the same transaction as their events, so two runs at once never send one twice."""
    now = now or clock.now()
    counts = JobCounts()
    while True:
        with transaction.atomic(durable=True):
            # Why the lock: the mark and the event are one change; a second run skips the
            # rows this one holds, the renewal waits for them.
            due = list(
                Subscription.objects.filter(
                    status=Subscription.Status.TRIALING,
                    trial_ending_sent_at__isnull=True,
                    current_period_end__gt=now,
                    current_period_end__lte=now + NOTICE,
                )
                .select_related("plan")
                .order_by("pk")
                .select_for_update(of=("self",), skip_locked=True)[:chunk_size]
            )
            if not due:
                return counts
            Subscription.objects.filter(pk__in=[s.pk for s in due]).update(trial_ending_sent_at=now)
            record_events(events=[_ending(s) for s in due], now=now)
            counts.trial_notices += len(due)
        counts.chunks += 1
        if on_chunk is not None:
            on_chunk(counts)


def _ending(subscription):
    return (
        subscription.account_id,
        "trial.ending",
        {
            "subscription": subscription.pk,
            "plan": subscription.plan.code,
            "trial_end": subscription.current_period_end.isoformat(),
        },
    )
