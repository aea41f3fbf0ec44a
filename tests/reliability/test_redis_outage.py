"""Redis (broker, cache and rate counts) stopped for 30 seconds under a mixed load: consume
and check keep answering (rate limits fail open), grants keep answering and their webhooks
wait in the outbox; when Redis is back the sweeper publishes them and a real worker delivers
every one. Real processes: granian, Redis, a Celery worker; the test's PostgreSQL."""

import http.client
import json
import os
import threading
import time
from collections import Counter

import pytest

from apps.accounts.services import create_api_key
from apps.api.throttling import REDIS_RETRY
from apps.jobs.models import JobRun
from apps.jobs.registry import run_job
from apps.usage.models import UsageEvent
from apps.webhooks.models import WebhookDelivery, WebhookEndpoint
from tests.clusters import database_url
from tests.ledger import assert_ledger_sound, priced_account
from tests.reliability.load import Load, granian, webhook_receiver
from tests.workers import real_worker

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.reliability,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]
DOWN = 30  # seconds Redis is away
MIX = ("/api/v1/consume", "/api/v1/consume", "/api/v1/check")


@pytest.fixture
def receiver():
    """A webhook endpoint (tests/reliability/load.py)."""
    with webhook_receiver() as receiver:
        yield receiver


class Grants(threading.Thread):
    """A grant every 0.3 s through the API, each with its own idempotency key."""

    def __init__(self, port, raw_key):
        super().__init__()
        self.port, self.raw_key = port, raw_key
        self.answers = []  # (status, seconds it took)
        self.stopping = threading.Event()

    def run(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        while not self.stopping.wait(0.3):
            body = {"amount": "25", "source": "promo", "reason": "outage",
                    "idempotency_key": f"g{len(self.answers)}"}  # fmt: skip
            started = time.monotonic()
            conn.request("POST", "/api/v1/accounts/acme/grants", json.dumps(body),
                         {"Authorization": f"Bearer {self.raw_key}",
                          "Content-Type": "application/json"})  # fmt: skip
            response = conn.getresponse()
            response.read()
            self.answers.append((response.status, time.monotonic() - started))
        conn.close()


def test_redis_stopped_for_30_seconds_under_load_loses_no_request_and_no_webhook(
    redis_broker, receiver, tmp_path
):
    url, received = receiver
    account, _ = priced_account(credits=1_000_000, external_id="acme")
    WebhookEndpoint.objects.create(account=account, url=url)
    _, raw_key = create_api_key(name="reliability", rate_limit_per_minute=10**9,
                                scopes=["usage:read", "usage:write", "grants:write"])  # fmt: skip
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.test", "LOG_LEVEL": "WARNING",
           "DATABASE_URL": database_url(), "REDIS_URL": redis_broker.url}  # fmt: skip

    with granian(env, tmp_path / "granian.log") as port:
        grants = Grants(port, raw_key)
        with Load(port, raw_key, clients=4, mix=MIX) as load:
            grants.start()
            time.sleep(2)
            redis_broker.stop()
            down_at = time.monotonic()
            time.sleep(DOWN)
            redis_broker.start()
            up_at = time.monotonic()
            time.sleep(3)
            grants.stopping.set()
            grants.join(timeout=60)

    answers = load.answers
    seen = Counter((a.path, a.status) for a in answers)
    during = Counter(a.path for a in answers if down_at < a.at < up_at)
    # Every consume charged and every check answered, Redis or not.
    assert set(seen) == {("/api/v1/consume", 201), ("/api/v1/check", 200)}, seen
    assert during["/api/v1/consume"] > 0 and during["/api/v1/check"] > 0
    assert {status for status, _ in grants.answers} == {201}
    slowest_grant = max(took for _, took in grants.answers)
    assert slowest_grant < 5, "a grant waited on the broker"
    # The rate counter stops trying Redis for REDIS_RETRY after a failure: one warning (and
    # one failed connection) per pause, not one per request.
    warned = (tmp_path / "granian.log").read_text().count("Rate limits not counted")
    assert 1 <= warned <= DOWN / REDIS_RETRY + 2 < sum(during.values()) / 10, warned

    # Back: the sweeper publishes what waited in the outbox, beat's retry job queues what
    # Redis lost when it stopped (it keeps nothing on disk), and a worker delivers it all.
    published = run_job(job="publish_outbox", trigger="command")
    requeued = run_job(job="retry_webhook_deliveries", trigger="command")
    assert {published.status, requeued.status} == {JobRun.Status.SUCCEEDED}
    with real_worker(purge=False):
        deadline = time.monotonic() + 60
        while WebhookDelivery.objects.exclude(status=WebhookDelivery.Status.SUCCEEDED).exists():
            assert time.monotonic() < deadline, "deliveries left undelivered"
            time.sleep(0.2)
    events = set(WebhookDelivery.objects.values_list("event_id", flat=True))
    assert len(events) == len(grants.answers) and set(received) == events
    charged = Counter(UsageEvent.objects.values_list("metadata__tag", flat=True))
    assert set(charged.values()) == {1}
    assert set(charged) == {a.tag for a in answers if a.path.endswith("consume")}
    assert_ledger_sound()
    print(
        f"\nRedis down {DOWN} s: {len(answers)} consumes and checks {dict(seen)}, "
        f"{sum(during.values())} of them while it was down; {len(grants.answers)} grants, "
        f"all 201, slowest {slowest_grant:.2f} s; {warned} warnings of uncounted rates; "
        f"outbox published {published.counts.get('published', 0)}, retry job queued "
        f"{requeued.counts.get('deliveries', 0)}; {len(events)} webhooks delivered "
        f"({len(received)} deliveries received)"
    )
