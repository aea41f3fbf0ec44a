"""A Celery worker SIGKILLed in the middle of a renewal chunk: the chunk's transaction dies
with its connection, the run's row is left running (the job-run list calls it stuck), and
the job's next run (beat's next tick, sent again here) on a new worker leaves the same
ledger as an unbroken run: every due subscription renewed once. Real processes: two
`celery worker`s one after the other, Redis, the test's PostgreSQL."""

from datetime import timedelta

import psycopg
import pytest

from apps.accounts.models import Subscription
from apps.core import clock
from apps.jobs.models import JobRun
from apps.jobs.registry import run_job
from apps.jobs.tasks import TASKS
from apps.wallets.models import CreditGrant
from apps.webhooks.models import WebhookDelivery, WebhookEndpoint
from apps.webhooks.services import SENDING_LEASE
from tests.clusters import database_url, lock_waiters
from tests.ledger import assert_ledger_sound, give, priced_account
from tests.periods.conftest import (
    FEB_28,
    calendar,  # noqa: F401 - a fixture this test uses
    world,
)
from tests.reliability.load import (
    celery_worker,
    killed_worker,
    run_on_a_new_worker,
    stop_worker,
    wait_for,
    webhook_receiver,
)
from tests.workers import empty_queue

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.reliability,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]
ACCOUNTS = 30
JOB = "renew_due_subscriptions"


def test_a_worker_killed_mid_renewal_chunk_leaves_the_ledger_of_an_unbroken_run(
    calendar,  # noqa: F811 - the fixture
    tmp_path,
):
    world("kill-", accounts=ACCOUNTS, calendar=calendar)
    due = Subscription.objects.filter(current_period_end__lte=FEB_28).order_by("pk")
    held = due.first()
    url = database_url()
    empty_queue()
    # One subscription's row is held: the run renews the others (SKIP LOCKED), then its
    # second pass waits on that row inside an open chunk. There the worker is killed.
    with psycopg.connect(url) as gate:
        gate.execute("SELECT 1 FROM accounts_subscription WHERE id = %s FOR UPDATE", [held.pk])

        def waiting_on_it():
            return due.count() == 1 and lock_waiters(url) > 0

        with killed_worker(tmp_path / "first.log", waiting_on_it):
            TASKS[JOB].apply_async(kwargs={"now": FEB_28.isoformat()})
    (stuck,) = JobRun.objects.filter(job=JOB)
    assert stuck.status == JobRun.Status.RUNNING
    renewed_before_the_kill = ACCOUNTS - due.count()
    assert renewed_before_the_kill == ACCOUNTS - 1  # all but the held one: committed

    # Beat's next tick sends the job again; a new worker runs it.
    rerun = run_on_a_new_worker(JOB, tmp_path / "second.log", now=FEB_28.isoformat())
    assert (rerun.status, rerun.counts.get("renewed")) == (JobRun.Status.SUCCEEDED, 1)
    assert not due.exists()
    periods = CreditGrant.objects.filter(account__external_id__startswith="kill-",
                                         source=CreditGrant.Source.PLAN_PERIOD)  # fmt: skip
    assert periods.count() == 2 * ACCOUNTS  # the first period's and the renewal's, once each
    assert_ledger_sound()
    print(
        f"\nWorker killed mid renewal chunk: {renewed_before_the_kill} of {ACCOUNTS} renewed "
        f"before the kill, the held one's chunk rolled back; the next run renewed "
        f"{rerun.counts.get('renewed')}; every subscription renewed once; ledger sound"
    )


@pytest.fixture
def slow_receiver():
    """A webhook endpoint whose first POST hangs (tests/reliability/load.py)."""
    with webhook_receiver(first_hangs=True) as receiver:
        yield receiver


def test_a_worker_killed_mid_webhook_delivery_loses_no_delivery(slow_receiver, tmp_path):
    url, received = slow_receiver
    account, _ = priced_account(external_id="acme")
    WebhookEndpoint.objects.create(account=account, url=url)
    empty_queue()
    give(account, 25)  # a credits.granted event, its delivery queued after the commit
    (delivery,) = WebhookDelivery.objects.all()
    with killed_worker(tmp_path / "first.log", lambda: len(received) == 1):  # POST in flight
        pass  # the delivery was queued by the grant's commit
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == (WebhookDelivery.Status.PENDING, 0)

    # The claim lasts SENDING_LEASE; once it has passed, beat's retry job queues the delivery
    # again and a new worker sends it.
    clock.advance(by=SENDING_LEASE + timedelta(minutes=1))
    requeued = run_job(job="retry_webhook_deliveries", trigger="command")
    restarted = celery_worker(tmp_path / "second.log")
    try:
        wait_for(lambda: WebhookDelivery.objects.filter(
            pk=delivery.pk, status=WebhookDelivery.Status.SUCCEEDED).exists(), 60,
            (tmp_path / "second.log").read_text)  # fmt: skip
    finally:
        stop_worker(restarted)
    delivery.refresh_from_db()
    assert delivery.attempts == 1
    # The receiver saw the event twice (the killed attempt reached it): the same event id,
    # by which docs/webhooks.md tells receivers to drop a repeat.
    assert received == [delivery.event_id, delivery.event_id]
    print(
        f"\nWorker killed mid webhook delivery: the delivery stayed pending under its "
        f"{SENDING_LEASE} claim; the retry job queued {requeued.counts.get('deliveries')}; "
        f"delivered on the next worker (the receiver saw event {delivery.event_id} twice)"
    )
