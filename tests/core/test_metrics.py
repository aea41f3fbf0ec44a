"""/metrics (apps/core/metrics.py, docs/metrics.md): Prometheus's scrape, there only for the
addresses allowed to see it; counters of what the API answered, through Django and through
the fast lane alike; gauges read from the jobs' and webhooks' tables at scrape time; and no
label that names an account."""

import os
import subprocess
import sys
from datetime import timedelta

import pytest
import stripe
from django.conf import settings
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families
from rest_framework.test import APIClient

from apps.accounts.services import create_api_key
from apps.billing.gateway import call_stripe
from apps.core.errors import PaymentProviderError
from apps.jobs.models import JobRun
from apps.jobs.registry import run_job
from apps.wallets.models import Wallet
from apps.webhooks.models import WebhookDelivery
from apps.webhooks.services import create_endpoint, record_events
from tests.api.conftest import FastLaneClient
from tests.commands import BASE_ENV
from tests.ledger import priced_account

pytestmark = pytest.mark.django_db

CONSUME = "api/v1/consume"  # the consume's route: its endpoint label
SECRET_ID = "acme-secret-42"  # an account's external id, which no label may carry


@pytest.fixture
def metrics_on(settings):
    settings.METRICS_ENABLED = True
    settings.METRICS_ALLOWED_IPS = ["127.0.0.1", "10.20.0.0/16"]


@pytest.fixture
def account():
    account, _ = priced_account(credits=5, external_id=SECRET_ID)
    return account


@pytest.fixture
def key():
    _, raw = create_api_key(name="metrics", scopes=["usage:read", "usage:write"])
    return raw


def with_key(client, key):
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


def scrape(client=None, **extra):
    """{(name, labels): value} of every sample /metrics answers with."""
    response = (client or APIClient()).get("/metrics", **extra)
    assert response.status_code == 200, response.content
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


def value(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())), 0)


def consume(client, quantity=1):
    body = {"account": SECRET_ID, "feature": "api_call", "quantity": str(quantity)}
    return client.post("/api/v1/consume", body, format="json")


def not_found_answer(response):
    """What the caller sees of a 404, but the request id (fresh per request)."""
    headers = {k: v for k, v in response.headers.items() if k != "X-Request-ID"}
    return response.status_code, headers, response.content


# --- who may scrape ----------------------------------------------------------------------------


def test_while_disabled_metrics_is_the_404_of_a_path_that_does_not_exist(settings):
    settings.METRICS_ALLOWED_IPS = ["127.0.0.1"]
    client = APIClient()
    assert settings.METRICS_ENABLED is False  # the default
    answer = not_found_answer(client.get("/metrics"))
    assert answer[0] == 404
    assert answer == not_found_answer(client.get("/no-such-page"))


@pytest.mark.usefixtures("metrics_on")
def test_an_address_outside_the_allow_list_gets_that_same_404_whatever_it_claims():
    client = APIClient(REMOTE_ADDR="203.0.113.9")
    nowhere = not_found_answer(client.get("/no-such-page"))
    assert not_found_answer(client.get("/metrics")) == nowhere
    assert not_found_answer(client.post("/metrics")) == nowhere  # not even a 405
    # Without trusted proxies (TRUSTED_PROXY_COUNT=0) X-Forwarded-For is the caller's word.
    claimed = client.get("/metrics", HTTP_X_FORWARDED_FOR="127.0.0.1")
    assert not_found_answer(claimed) == nowhere


@pytest.mark.usefixtures("metrics_on")
def test_behind_a_proxy_the_client_is_judged_not_the_proxy(settings):
    settings.TRUSTED_PROXY_COUNT = 1
    proxy = APIClient(REMOTE_ADDR="10.20.0.5")  # on the allow-list itself
    public = proxy.get("/metrics", HTTP_X_FORWARDED_FOR="198.51.100.7")
    assert public.status_code == 404
    inside = proxy.get("/metrics", HTTP_X_FORWARDED_FOR="198.51.100.7, 10.20.3.4")
    assert inside.status_code == 200


@pytest.mark.usefixtures("metrics_on")
def test_inside_the_allow_list_the_scrape_is_prometheus_text_with_every_collector_read():
    response = APIClient(REMOTE_ADDR="10.20.1.1").get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert "no-cache" in response["Cache-Control"]
    samples = scrape()
    for collector in ("outbox", "jobs", "webhooks"):
        assert value(samples, "creditdesk_scrape_collector_success", collector=collector) == 1
    assert value(samples, "creditdesk_outbox_tasks") == 0


def test_a_bad_allow_list_entry_refuses_to_start():
    env = {**BASE_ENV, "DJANGO_SETTINGS_MODULE": "config.settings.test",
           "METRICS_ALLOWED_IPS": "10.0.0.0/8,10.0.0.300"}  # fmt: skip
    result = subprocess.run([sys.executable, "manage.py", "check"], cwd=settings.BASE_DIR, env=env,
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert result.returncode != 0
    assert "METRICS_ALLOWED_IPS: '10.0.0.300' is no address or network." in result.stderr


# --- what the API answered ---------------------------------------------------------------------


def assert_one_charge_and_one_refusal_counted(before, after):
    def moved(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("creditdesk_http_requests_total", endpoint=CONSUME, method="POST",
                 status="201") == 1  # fmt: skip
    assert moved("creditdesk_http_requests_total", endpoint=CONSUME, method="POST",
                 status="402") == 1  # fmt: skip
    assert moved("creditdesk_consumes_total", outcome="charged") == 1
    assert moved("creditdesk_consumes_total", outcome="insufficient_credits") == 1


@pytest.mark.usefixtures("metrics_on", "account")
def test_a_consume_through_django_counts_its_request_and_its_outcome(key):
    before = scrape()
    client = with_key(APIClient(), key)
    assert consume(client).status_code == 201
    assert consume(client, quantity=100).status_code == 402
    after = scrape()

    assert_one_charge_and_one_refusal_counted(before, after)


@pytest.mark.postgres
@pytest.mark.usefixtures("metrics_on", "account")
def test_a_consume_through_the_fast_lane_counts_as_one_through_django_does(key):
    before = scrape()
    lane = with_key(FastLaneClient(), key)
    charged = consume(lane)
    assert charged.status_code == 201
    assert charged.from_fast_lane
    refused = consume(lane, quantity=100)  # the lane hands a refusal on to Django
    assert refused.status_code == 402
    assert not getattr(refused, "from_fast_lane", False)
    after = scrape()

    assert_one_charge_and_one_refusal_counted(before, after)


@pytest.mark.usefixtures("metrics_on", "account")
def test_a_batch_counts_each_event_s_outcome(key):
    before = scrape()
    events = [{"account": SECRET_ID, "feature": "api_call", "quantity": q} for q in ("1", "99")]
    events.append({"account": "nobody", "feature": "api_call"})
    response = with_key(APIClient(), key).post("/api/v1/consume/batch", {"events": events},
                                               format="json")  # fmt: skip
    assert [r["status"] for r in response.json()["results"]] == [201, 402, 404]
    after = scrape()
    for outcome in ("charged", "insufficient_credits", "account_not_found"):
        moved = value(after, "creditdesk_consumes_total", outcome=outcome) - value(
            before, "creditdesk_consumes_total", outcome=outcome
        )
        assert moved == 1, outcome


@pytest.mark.usefixtures("metrics_on")
def test_a_failed_stripe_call_is_counted_by_operation_and_error():
    """The test settings point Stripe's client at a port where nothing listens."""
    labels = {"operation": "Customer.retrieve", "error": "APIConnectionError"}
    before = value(scrape(), "creditdesk_stripe_errors_total", **labels)
    with pytest.raises(PaymentProviderError):
        call_stripe(stripe.Customer.retrieve, id="cus_nobody")
    assert value(scrape(), "creditdesk_stripe_errors_total", **labels) == before + 1


# --- read from the database at scrape time ---------------------------------------------------


@pytest.mark.usefixtures("metrics_on")
def test_a_failed_job_run_shows_in_the_job_metrics():
    now = timezone.now()
    JobRun.objects.create(job="expire_grants", trigger="beat", as_of=now, status="succeeded",
                          finished_at=now - timedelta(hours=2))  # fmt: skip
    JobRun.objects.filter(job="expire_grants").update(started_at=now - timedelta(hours=2))
    JobRun.objects.create(job="expire_grants", trigger="beat", as_of=now, status="failed",
                          finished_at=now, error="Traceback ...")  # fmt: skip
    JobRun.objects.create(job="post_revenue", trigger="command", as_of=now)  # running
    samples = scrape()
    job = "expire_grants"
    assert value(samples, "creditdesk_job_last_run_status", job=job, status="failed") == 1
    assert value(samples, "creditdesk_job_last_run_status", job=job, status="succeeded") == 0
    assert value(samples, "creditdesk_job_failed_runs_last_hour", job=job) == 1
    since = value(samples, "creditdesk_job_seconds_since_success", job=job)
    assert 2 * 3600 <= since < 2 * 3600 + 60
    assert value(samples, "creditdesk_job_runs_in_progress", job="post_revenue") == 1
    assert value(samples, "creditdesk_job_runs_in_progress", job=job) == 0
    # A job that never ran: its counts are there (zero), its times are not.
    never = frozenset({("job", "publish_outbox")})
    assert ("creditdesk_job_failed_runs_last_hour", never) in samples
    assert ("creditdesk_job_seconds_since_success", never) not in samples
    # A run by beat left running past its job's interval (a killed worker) is stuck.
    JobRun.objects.create(job="renew_due_subscriptions", trigger="beat", as_of=now)
    JobRun.objects.filter(job="renew_due_subscriptions").update(started_at=now - timedelta(hours=1))
    assert value(scrape(), "creditdesk_job_runs_stuck", job="renew_due_subscriptions") == 1


@pytest.mark.usefixtures("metrics_on")
def test_a_broken_ledger_shows_as_the_verifications_problems():
    account, _ = priced_account(credits=10)
    run_job(job="verify_ledger", trigger="command")
    assert value(scrape(), "creditdesk_job_last_run_problems", job="verify_ledger") == 0

    Wallet.objects.filter(account=account).update(balance=10**6)  # what no service writes
    found = run_job(job="verify_ledger", trigger="command").counts["problems"]

    samples = scrape()
    assert value(samples, "creditdesk_job_last_run_problems", job="verify_ledger") == found > 0
    assert value(samples, "creditdesk_job_last_run_status", job="verify_ledger",
                 status="failed") == 1  # fmt: skip


@pytest.mark.usefixtures("metrics_on")
def test_webhook_deliveries_that_wait_fail_and_gave_up_show_as_backlog(account):
    now = timezone.now()
    create_endpoint(account=account, url="https://example.com/hook")
    data = {"credit_type": "credits", "available": "5", "threshold": "10"}
    deliveries = record_events(events=[(account.pk, "balance.low", data)] * 5, now=now)
    for delivery, fields in zip(deliveries, [
        {"next_attempt_at": now - timedelta(minutes=10)},  # due for ten minutes
        {"next_attempt_at": now + timedelta(minutes=5), "attempts": 3},  # failing, retried later
        {"status": "failed", "attempts": 8, "last_attempt_at": now - timedelta(minutes=5)},
        {"status": "failed", "attempts": 8, "last_attempt_at": now - timedelta(hours=3)},
        {"status": "succeeded", "attempts": 1, "last_attempt_at": now},
    ], strict=True):  # fmt: skip
        WebhookDelivery.objects.filter(pk=delivery.pk).update(**fields)
    samples = scrape()
    assert value(samples, "creditdesk_webhook_deliveries_pending") == 2
    assert value(samples, "creditdesk_webhook_deliveries_due") == 1
    assert value(samples, "creditdesk_webhook_deliveries_retrying") == 1
    assert value(samples, "creditdesk_webhook_deliveries_gave_up_last_hour") == 1
    assert 600 <= value(samples, "creditdesk_webhook_oldest_due_seconds") < 660


# --- what the labels never say ---------------------------------------------------------------


@pytest.mark.usefixtures("metrics_on", "account")
def test_no_label_names_an_account(key):
    clients = [with_key(APIClient(), key)]
    if settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        clients.append(with_key(FastLaneClient(), key))
    for client in clients:
        assert consume(client).status_code == 201
        assert client.get(f"/api/v1/accounts/{SECRET_ID}/balance").status_code == 200
        assert client.get("/api/v1/accounts/not-a-customer-7/balance").status_code == 404
        assert client.get(f"/{SECRET_ID}/no-such-page").status_code == 404
    samples = scrape()
    label_values = {v for _, labels in samples for _, v in labels}
    assert "api/v1/accounts/<external_id:external_id>/balance" in label_values
    assert "unmatched" in label_values
    assert not [v for v in label_values if SECRET_ID in v or "not-a-customer" in v]


def test_several_worker_processes_add_up_in_one_scrape(tmp_path):
    """PROMETHEUS_MULTIPROC_DIR: each process writes its counts there; a scrape of any sums
    them all (here two processes count, a third scrapes)."""
    env = {**BASE_ENV, "DJANGO_SETTINGS_MODULE": "config.settings.test",
           "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics")}  # fmt: skip
    setup = "import django; django.setup(); from apps.core import metrics; "
    count = setup + "metrics.count_request(endpoint='healthz', method='GET', status=200)"
    show = setup + "print(metrics.exposition().decode())"

    def run(code):
        result = subprocess.run([sys.executable, "-c", code], cwd=settings.BASE_DIR, env=env,
                                capture_output=True, text=True, timeout=120)  # fmt: skip
        assert result.returncode == 0, result.stderr
        return result.stdout

    run(count)
    run(count)
    assert len(os.listdir(tmp_path / "metrics")) == 2  # a file per process
    line = 'creditdesk_http_requests_total{endpoint="healthz",method="GET",status="200"} 2.0'
    assert line in run(show).splitlines()
