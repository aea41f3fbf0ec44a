"""The OpenAPI document describes every event CreditDesk sends (OpenAPI 3.1 `webhooks`), and
what is sent matches it: checked here for the ledger's events, and after every test of the
suite for whatever events it recorded (tests/conftest.py)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.wallets.services import expire_grants
from apps.webhooks.models import EVENT_TYPES, WebhookEndpoint, WebhookEvent
from tests.factories import AccountFactory
from tests.ledger import give
from tests.webhook_schemas import event_problems, validators

pytestmark = pytest.mark.django_db


def test_the_document_is_openapi_3_1_with_a_webhook_for_every_event_type(client):
    document = client.get("/api/schema/?format=json").json()
    assert document["openapi"] == "3.1.0"
    assert list(document["webhooks"]) == [code for code, _ in EVENT_TYPES]
    body = document["webhooks"]["credits.granted"]["post"]["requestBody"]
    assert body["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/CreditsGrantedEvent"
    }


def test_grants_and_expiries_are_sent_as_described(time_machine):
    WebhookEndpoint.objects.create(account=None, url="http://127.0.0.1:9/hooks")
    account = AccountFactory(external_id="acme")
    give(account, 10, days=1, reason="trial credits")
    give(account, 5)
    time_machine.move_to(timezone.now() + timedelta(days=2))
    expire_grants()
    sent = WebhookEvent.objects.order_by("pk")
    assert sorted(e.type for e in sent) == ["credits.expired", "credits.granted", "credits.granted"]
    assert event_problems(sent) == []


def test_a_payload_that_drifts_from_the_document_is_caught():
    WebhookEndpoint.objects.create(account=None, url="http://127.0.0.1:9/hooks")
    give(AccountFactory(external_id="acme"), 10)
    event = WebhookEvent.objects.get()
    event.data = {**event.data, "balance_after": 10, "grant": {"id": "1"}}
    problems = event_problems([event])
    assert any("balance_after: 10 is not of type 'string'" in p for p in problems), problems
    assert any("'source' is a required property" in p for p in problems), problems
    assert set(validators()) == {code for code, _ in EVENT_TYPES}
