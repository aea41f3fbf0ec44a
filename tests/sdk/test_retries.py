"""The retry rules (creditdesk/retries.py) through a fault-injecting proxy in front of a live
server: what is tried again, with which key, after how long — and what never is."""

import json
import time

import creditdesk
import pytest
from creditdesk import RetryPolicy

from apps.accounts.services import create_api_key
from apps.usage.models import UsageEvent
from tests.ledger import D, wallet_of

pytestmark = [
    pytest.mark.postgres,  # the live server needs a database its threads share
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


def bodies(faults, path="/api/v1/consume"):
    return [json.loads(body) for _, seen_path, body in faults.seen if seen_path == path]


def test_a_consume_whose_answer_was_lost_is_retried_with_its_key_and_charged_once(faulty, acme):
    cd, faults = faulty("lose")
    used = cd.consume(account="acme", feature="api_call", quantity=3)
    sent = bodies(faults)
    assert len(sent) == 2 and sent[0] == sent[1]  # the same body, so the same key
    assert sent[0]["idempotency_key"].startswith("sdk_")
    assert UsageEvent.objects.get().pk == used["id"]  # the retry got the first answer again
    assert wallet_of(acme).balance == D(97)


def test_a_connection_refused_before_sending_is_retried_whatever_the_request(faulty, acme):
    cd, faults = faulty("refuse", "refuse")
    link = cd.billing_link(account="acme")  # a POST without a key: never ran, so safe
    assert link["url"] and len(faults.seen) == 3


def test_an_answer_lost_for_a_request_that_is_not_replayable_is_not_retried(faulty, acme):
    cd, faults = faulty()
    reservation = cd.create_reservation(account="acme", feature="api_call", quantity=5)
    faults.script = ["lose"]
    with pytest.raises(creditdesk.APIConnectionError):
        cd.commit_reservation(reservation["id"], quantity=5)  # it ran: a retry would be a 409
    assert [path for _, path, _ in faults.seen].count(
        f"/api/v1/reservations/{reservation['id']}/commit"
    ) == 1
    assert cd.get_reservation(reservation["id"])["status"] == "committed"


def test_rate_limited_waits_for_retry_after(faulty, acme):
    cd, faults = faulty(429, retry_after=1)
    started = time.monotonic()
    assert cd.balance(account="acme")["wallets"]
    assert time.monotonic() - started >= 1 and len(faults.seen) == 2


def test_a_real_rate_limit_longer_than_the_client_waits_is_raised_at_once(server, acme):
    _, key = create_api_key(name="slow", scopes=["usage:read"], rate_limit_per_minute=1)
    policy = RetryPolicy(max_retry_after=0.5)  # the server asks for 1 s at least
    with creditdesk.CreditDesk(key, base_url=server, retries=policy) as cd:
        started = time.monotonic()
        with pytest.raises(creditdesk.RateLimited) as limited:
            for _ in range(3):  # one a minute: the second or, across a window's end, the third
                cd.balance(account="acme")
    assert time.monotonic() - started < 5  # refused at once, not waited out
    assert limited.value.status == 429 and 1 <= limited.value.retry_after <= 60


@pytest.mark.parametrize("status", [502, 503, 504])
def test_a_gateway_error_is_retried_for_a_read_but_not_for_a_post_without_a_key(
    faulty, acme, status
):
    cd, faults = faulty(status, status)
    assert cd.get_account(account="acme")["external_id"] == "acme"
    assert len(faults.seen) == 3
    cd, faults = faulty(status)
    with pytest.raises(creditdesk.ServerError) as failed:
        cd.create_webhook_endpoint(url="http://127.0.0.1:9/hooks")
    assert failed.value.status == status and len(faults.seen) == 1


def test_a_500_is_retried_only_with_the_same_key(faulty, acme):
    cd, faults = faulty(500)
    cd.consume(account="acme", feature="api_call", idempotency_key="order-9")
    assert [body["idempotency_key"] for body in bodies(faults)] == ["order-9", "order-9"]
    cd, faults = faulty(500)
    with pytest.raises(creditdesk.ServerError):
        cd.put_account(account="acme", name="Acme")  # no key: it may have run
    assert len(faults.seen) == 1
    assert wallet_of(acme).balance == D(99)


def test_retries_stop_after_max_retries(faulty, acme):
    cd, faults = faulty("refuse", "refuse", "refuse", "refuse")
    with pytest.raises(creditdesk.APIConnectionError, match="refused"):
        cd.consume(account="acme", feature="api_call")
    assert len(faults.seen) == 4  # the call and three retries
    cd, faults = faulty(503, retries=creditdesk.NO_RETRIES)
    with pytest.raises(creditdesk.ServerError):
        cd.get_account(account="acme")
    assert len(faults.seen) == 1
    assert wallet_of(acme).balance == D(100)


def test_a_batch_retried_after_a_lost_answer_charges_nothing_twice(faulty, acme):
    cd, faults = faulty("lose")
    results = cd.consume_batch([{"account": "acme", "feature": "api_call"}] * 3)
    assert [r["replayed"] for r in results] == [True] * 3
    assert UsageEvent.objects.count() == 3 and wallet_of(acme).balance == D(97)


def test_backoff_doubles_up_to_its_cap_with_half_of_it_random():
    policy = RetryPolicy(base_delay=0.5, max_delay=8.0)
    for retry, ceiling in [(0, 0.5), (1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (9, 8.0)]:
        waits = [policy.backoff(retry) for _ in range(200)]
        assert ceiling / 2 <= min(waits) < max(waits) <= ceiling


def test_a_delete_whose_answer_was_lost_is_done_when_its_retry_finds_nothing(faulty, cd, acme):
    cd.put_contract(account="acme", features=[{"feature": "api_call", "credits_per_unit": "2"}])
    retrying, faults = faulty("lose")
    assert retrying.delete_contract(account="acme", reason="over") is None
    assert [method for method, _, _ in faults.seen] == ["DELETE", "DELETE"]  # the second: 404
    with pytest.raises(creditdesk.ContractNotFound):
        cd.get_contract(account="acme")


def test_a_batch_interrupted_between_requests_says_what_was_answered_and_what_to_send_again(
    faulty, acme
):
    events = [{"account": "acme", "feature": "api_call", "quantity": "0.01"}] * 1500
    cd, faults = faulty(None, 503, retries=creditdesk.NO_RETRIES)
    with pytest.raises(creditdesk.BatchInterrupted) as stopped:
        cd.consume_batch(events)
    assert isinstance(stopped.value.__cause__, creditdesk.ServerError)
    assert len(stopped.value.results) == 1000 and len(stopped.value.remaining) == 500
    keys = [event["idempotency_key"] for event in stopped.value.remaining]
    assert keys == [
        event["idempotency_key"] for event in bodies(faults, "/api/v1/consume/batch")[1]["events"]
    ]
    again = cd.consume_batch(stopped.value.remaining)
    assert [r["status"] for r in again] == [201] * 500
    assert UsageEvent.objects.count() == 1500 and wallet_of(acme).balance == D(85)
