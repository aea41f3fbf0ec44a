"""Outgoing webhooks: signed, retried with backoff, logged, resent, replay-detectable."""

import json
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from apps.periods.services import renew_due_subscriptions
from apps.wallets.services import expire_grants
from apps.webhooks.models import WebhookDelivery, WebhookEndpoint, WebhookEvent
from apps.webhooks.services import MAX_ATTEMPTS, backoff, deliver, resend
from tests.factories import AccountFactory
from tests.ledger import give
from tests.periods.conftest import FEB_28, monthly_plan, subscribed
from tests.workers import real_worker

pytestmark = pytest.mark.django_db


def endpoint_for(account, receiver, **fields):
    return WebhookEndpoint.objects.create(account=account, url=receiver.url, **fields)


def only_delivery(**filters):
    [delivery] = WebhookDelivery.objects.filter(**filters)
    return delivery


def test_a_grant_sends_credits_granted_signed_so_the_receiver_can_verify_it(receiver):
    account = AccountFactory(external_id="acme")
    endpoint = endpoint_for(account, receiver)
    grant = give(account, 25)
    delivery = only_delivery()
    assert deliver(delivery_id=delivery.pk).status == "succeeded"
    [request] = receiver.received
    assert receiver.verify(endpoint.secret, request)
    assert not receiver.verify("whsec_someone_else", request)
    event = json.loads(request["body"])
    assert request["event_id"] == event["id"] == delivery.event_id
    assert request["content_type"] == "application/json"
    assert event["type"] == "credits.granted"
    assert event["data"]["account"] == "acme"
    assert event["data"]["grant"] == {
        "id": grant.pk,
        "source": "promo",
        "amount": "25",
        "expires_at": None,
        "reference": None,
    }
    delivery.refresh_from_db()
    assert (delivery.attempts, delivery.last_response_status) == (1, 200)


def test_a_failing_receiver_gets_retries_with_exponential_backoff_then_gives_up(
    receiver, time_machine
):
    time_machine.move_to(timezone.now(), tick=False)
    account = AccountFactory()
    endpoint_for(account, receiver)
    give(account, 5)
    delivery = only_delivery()
    receiver.status = 500
    waits = []
    for attempt in range(1, MAX_ATTEMPTS + 1):
        before = timezone.now()
        deliver(delivery_id=delivery.pk)
        assert deliver(delivery_id=delivery.pk) is None  # not due again yet
        delivery.refresh_from_db()
        assert (delivery.attempts, delivery.last_response_status) == (attempt, 500)
        if delivery.next_attempt_at:
            waits.append(delivery.next_attempt_at - before)
            time_machine.move_to(delivery.next_attempt_at, tick=False)
    assert waits == [backoff(n) for n in range(1, MAX_ATTEMPTS)]
    assert waits[:3] == [timedelta(seconds=30), timedelta(seconds=60), timedelta(seconds=120)]
    assert delivery.status == "failed"
    assert len(receiver.received) == MAX_ATTEMPTS


def test_a_resent_delivery_carries_the_same_event_id_so_a_receiver_detects_the_replay(receiver):
    account = AccountFactory()
    endpoint = endpoint_for(account, receiver)
    give(account, 5)
    delivery = only_delivery()
    deliver(delivery_id=delivery.pk)
    resend(delivery=delivery)
    deliver(delivery_id=delivery.pk)
    first, second = receiver.received
    assert first["event_id"] == second["event_id"]
    assert first["body"] == second["body"]
    assert receiver.verify(endpoint.secret, second)
    seen, replays = set(), []
    for request in receiver.received:
        replays.append(request["event_id"] in seen)
        seen.add(request["event_id"])
    assert replays == [False, True]


def test_an_endpoint_gets_only_the_events_it_asked_for(receiver):
    account = AccountFactory()
    endpoint_for(account, receiver, event_types=["credits.expired"])
    give(account, 5)
    assert WebhookEvent.objects.count() == 0


def test_accounts_without_endpoints_record_no_events(db):
    give(AccountFactory(), 5)
    assert WebhookEvent.objects.count() == 0


def test_expiry_and_renewal_send_credits_expired_and_period_renewed(receiver, calendar):
    account, subscription = subscribed(monthly_plan(credits=100, percent=50))
    endpoint_for(account, receiver, event_types=["credits.expired", "period.renewed"])
    give(account, 10, days=3)
    expire_grants(now=timezone.now() + timedelta(days=4))
    renew_due_subscriptions(now=FEB_28)
    events = {e.type: e.data for e in WebhookEvent.objects.all()}
    assert events["period.renewed"] == {
        "account": account.external_id,
        "subscription": subscription.pk,
        "plan": subscription.plan.code,
        "status": "active",
        "period_start": FEB_28.isoformat(),
        "period_end": "2026-03-31T12:00:00+00:00",
        "periods": 1,
    }
    expired = sorted(e.data["credits"] for e in WebhookEvent.objects.filter(type="credits.expired"))
    assert expired == ["10", "50"]  # the pack, then the part of the plan that did not roll


@pytest.mark.redis
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_delivery_goes_out_through_a_real_worker_after_commit(receiver):
    account = AccountFactory()
    endpoint = endpoint_for(account, receiver)
    with real_worker():
        give(account, 7)  # commits; on_commit queues the delivery
        deadline = time.monotonic() + 20
        while not receiver.received and time.monotonic() < deadline:
            time.sleep(0.05)
        while only_delivery().status == "pending" and time.monotonic() < deadline:
            time.sleep(0.05)
    assert receiver.verify(endpoint.secret, receiver.received[0])
    assert only_delivery().status == "succeeded"
    connection.close()


def test_a_redirect_is_a_failed_attempt_not_a_delivery(receiver):
    account = AccountFactory()
    endpoint_for(account, receiver)
    give(account, 5)
    receiver.status = 302
    delivery = deliver(delivery_id=only_delivery().pk)
    assert (delivery.status, delivery.last_response_status) == ("pending", 302)
    assert delivery.attempts == 1


def test_an_unreachable_receiver_is_a_failed_attempt(db):
    account = AccountFactory()
    WebhookEndpoint.objects.create(account=account, url="http://127.0.0.1:9/nothing-here")
    give(account, 5)
    delivery = deliver(delivery_id=only_delivery().pk)
    assert (delivery.status, delivery.attempts, delivery.last_response_status) == (
        "pending",
        1,
        None,
    )
    assert delivery.last_error
