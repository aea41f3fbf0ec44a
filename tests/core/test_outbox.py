"""Redis down must not take the API down: a task is published after its transaction commits,
with a short timeout; what cannot be published waits in the outbox (a table, written in the
same transaction) and the sweeper publishes it when the broker is back. Real Redis server,
real API requests, real jobs."""

import time
from io import StringIO

import pytest
from django.conf import settings
from django.core.management import call_command

from apps.core.models import OutboxTask
from apps.core.outbox import publish
from apps.jobs.models import JobRun
from apps.jobs.registry import JOBS, run_job
from apps.webhooks.models import WebhookDelivery, WebhookEndpoint
from tests.ledger import priced_account

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)  # on-commit runs

# A publish waits at most a try, a reconnect and a retry (settings.TASK_PUBLISH_TIMEOUT each);
# the margin is for a loaded two-core CI machine. Without the timeouts a hung Redis holds a
# request forever.
FAST = 3 * settings.TASK_PUBLISH_TIMEOUT + 2


def grant(client, key):
    body = {"amount": "25", "source": "promo", "reason": "outage", "idempotency_key": key}
    started = time.monotonic()
    response = client.post("/api/v1/accounts/acme/grants", body, format="json")
    return response, time.monotonic() - started


def deliveries():
    return list(WebhookDelivery.objects.order_by("pk").values_list("pk", flat=True))


def outbox():
    return list(OutboxTask.objects.order_by("pk").values_list("task", "args"))


@pytest.fixture
def watched_account(db):
    account, _ = priced_account(external_id="acme")
    WebhookEndpoint.objects.create(account=account, url="https://hooks.example.com/in")
    return account


@pytest.mark.postgres  # SQLite's test flush cannot delete ledger entries
def test_a_grant_answers_while_redis_is_down_and_its_webhook_is_queued_when_redis_returns(
    authed_client, watched_account, redis_broker
):
    response, _ = grant(authed_client, "before")
    assert response.status_code == 201
    (first,) = deliveries()
    assert redis_broker.queued() == [("webhooks.deliver", [first])]
    assert outbox() == []  # published, so nothing kept

    redis_broker.stop()
    response, took = grant(authed_client, "during")
    assert response.status_code == 201, response.content
    assert took < FAST
    second = deliveries()[-1]
    assert outbox() == [("webhooks.deliver", [second])]

    redis_broker.start()  # same port, empty: what was queued before the outage is gone
    run = run_job(job="publish_outbox", trigger="command")
    assert (run.status, run.counts["published"]) == (JobRun.Status.SUCCEEDED, 1)
    assert redis_broker.queued() == [("webhooks.deliver", [second])]
    assert outbox() == []


@pytest.mark.postgres  # SQLite's test flush cannot delete ledger entries
def test_a_hung_redis_costs_one_short_timeout_not_the_request(
    authed_client, watched_account, redis_broker
):
    grant(authed_client, "warm")  # the pool holds a live connection to the broker
    redis_broker.hang()
    took = sorted(grant(authed_client, f"during-{n}")[1] for n in range(3))
    assert took[-1] < FAST  # the first request waits the publish out …
    assert took[1] < settings.TASK_PUBLISH_TIMEOUT  # … and the others do not try again
    assert [task for task, _ in outbox()] == ["webhooks.deliver"] * 3
    redis_broker.wake()
    call_command("run_period_jobs", "--job", "publish_outbox", stdout=None)
    assert outbox() == []
    assert [args for _, args in redis_broker.queued()][-3:] == [[pk] for pk in deliveries()[-3:]]


def test_a_publish_outside_a_transaction_that_fails_is_kept_once(redis_broker):
    redis_broker.stop()
    publish("webhooks.deliver", 7)
    publish("webhooks.deliver", 7)  # a retry job queues the same delivery again
    publish("webhooks.deliver", 8)
    assert outbox() == [("webhooks.deliver", [7]), ("webhooks.deliver", [8])]


def test_the_sweeper_stops_at_the_first_failure_and_keeps_the_rest(redis_broker):
    redis_broker.stop()
    publish("webhooks.deliver", 1)
    publish("webhooks.deliver", 2)
    run = run_job(job="publish_outbox", trigger="command")
    assert run.status == JobRun.Status.FAILED
    assert run.counts["failures"] == 1
    assert len(outbox()) == 2
    kept = OutboxTask.objects.order_by("pk").first()
    assert kept.attempts == 2 and "Connection refused" in kept.last_error


@pytest.mark.postgres  # SQLite's test flush cannot delete ledger entries
def test_the_period_jobs_run_to_the_end_while_the_broker_is_down(
    authed_client, watched_account, redis_broker
):
    redis_broker.stop()
    response, _ = grant(authed_client, "during")
    assert response.status_code == 201
    (delivery,) = deliveries()
    call_command("run_period_jobs", stdout=StringIO(), stderr=StringIO())
    runs = dict(JobRun.objects.values_list("job", "status"))
    assert set(runs) == set(JOBS)
    failed = {job for job, status in runs.items() if status == JobRun.Status.FAILED}
    assert failed == {"publish_outbox"}  # it could not publish either: it tries next minute
    assert outbox() == [("webhooks.deliver", [delivery])]  # kept once, re-queued by the retry job
