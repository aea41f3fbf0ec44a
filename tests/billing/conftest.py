"""The billing tests' helpers around the offline Stripe (tests/conftest.py serves it): its
held events (`stripe_events`) are delivered through dj-stripe's real webhook view, signed as
Stripe signs them, in the order and as often as each test wants."""

import json
from datetime import UTC, datetime

import pytest
import requests
import stripe

from apps.accounts.models import Subscription
from apps.billing.catalog_sync import sync_stripe_catalog
from apps.billing.gateway import connect_stripe_webhook
from devtools.offline_stripe.wire import sign
from tests.factories import AccountFactory, CreditPackFactory, CreditTypeFactory


@pytest.fixture
def webhook(db, offline_stripe, client):
    """Delivers events to dj-stripe's endpoint the way Stripe does."""
    endpoint, _ = connect_stripe_webhook(base_url="http://testserver")

    class Webhook:
        url = f"/stripe/webhook/{endpoint.djstripe_uuid}/"
        secret = endpoint.secret

        def post(self, event, *, secret=None, timestamp=None):
            body = json.dumps(event)
            return client.post(
                self.url,
                data=body,
                content_type="application/json",
                HTTP_STRIPE_SIGNATURE=sign(body, secret or self.secret, timestamp),
            )

        def deliver(self, events):
            for event in events:
                response = self.post(event)
                assert response.status_code == 200, (event["type"], response.content)

    return Webhook()


@pytest.fixture
def pack(db, offline_stripe):
    pack = CreditPackFactory(
        code="pack_1000", credits=1000, price="10.00", credit_type=CreditTypeFactory(code="credits")
    )
    sync_stripe_catalog()
    pack.refresh_from_db()
    return pack


@pytest.fixture
def account(db):
    return AccountFactory(external_id="acme")


def pay(offline_stripe, session_id, card="4242"):
    """The customer presses Pay on the offline Stripe's checkout page."""
    answer = requests.post(
        f"{offline_stripe.url}/pay/{session_id}",
        data={"action": "pay", "card": card},
        allow_redirects=False,
        timeout=10,
    )
    assert answer.status_code == 303, answer.text
    return answer.headers["Location"]


SUCCESS_URL = "https://app.example/ok?s={CHECKOUT_SESSION_ID}"


def checkout(authed_client, account, **item):
    """`POST checkout` for `credit_pack=code` or `plan=code`, as the app would; the session id."""
    answer = authed_client.post(
        f"/api/v1/accounts/{account.external_id}/checkout",
        {**item, "success_url": SUCCESS_URL, "cancel_url": "https://app.example/cancel"},
        format="json",
    )
    assert answer.status_code == 201, answer.content
    assert set(answer.json()) == {"checkout_url", "session_id"}
    return answer.json()["session_id"]


# --- shared by the billing tests -----------------------------------------------------------

KEY = "sk_test_OfflineStandInNotASecret0000"  # the offline Stripe takes any sk_ key
JAN_31 = datetime(2026, 1, 31, 12, 0, tzinfo=UTC)
FEB_28 = datetime(2026, 2, 28, 12, 0, tzinfo=UTC)
MAR_31 = datetime(2026, 3, 31, 12, 0, tzinfo=UTC)


def buy(authed_client, account, pack, offline_stripe):
    """Checkout for the pack and Pay; the session id (its events are held, not delivered)."""
    session_id = checkout(authed_client, account, credit_pack=pack.code)
    assert pay(offline_stripe, session_id) == SUCCESS_URL.format(CHECKOUT_SESSION_ID=session_id)
    return session_id


def refund(offline_stripe, purchase, amount):
    return stripe.Refund.create(api_key=KEY, payment_intent=purchase.payment_intent_id,
                                amount=amount)  # fmt: skip


def subscribe(authed_client, account, plan, offline_stripe):
    """Checkout for the plan and Pay; Stripe's subscription id."""
    session_id = checkout(authed_client, account, plan=plan.code)
    pay(offline_stripe, session_id)
    return offline_stripe.get("checkout.session", session_id)["subscription"]


def control(offline_stripe, path):
    """What the world does at Stripe (a renewal, a failed payment): `/_offline/<path>`."""
    answer = requests.post(f"{offline_stripe.url}/_offline/{path}", timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()


def ours(stripe_id):
    return Subscription.objects.get(stripe_subscription_id=stripe_id)
