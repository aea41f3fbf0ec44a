"""Playing the customer and the world at the offline Stripe (tests/conftest.py serves it):
Checkout through the API and Pay, refunds, renewals and failed payments; and Stripe's events
signed as Stripe signs them. Whatever they make Stripe send is held in `stripe_events` until
the test delivers it."""

import json

import requests
import stripe

from apps.accounts.models import Subscription
from devtools.offline_stripe.wire import sign

KEY = "sk_test_OfflineStandInNotASecret0000"  # the offline Stripe takes any sk_ key
SUCCESS_URL = "https://app.example/ok?s={CHECKOUT_SESSION_ID}"


def signed(event, secret, timestamp=None):
    """The body and `Stripe-Signature` header Stripe sends `event` with to an endpoint."""
    body = json.dumps(event)
    return body, sign(body, secret, timestamp)


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
