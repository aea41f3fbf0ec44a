"""Buying a credit pack: Checkout through the API, payment on the offline Stripe, the events
through dj-stripe's webhook view, the credits once; refunds and disputes claw back."""

import json
from decimal import Decimal

import pytest
import requests
import stripe
from djstripe.models import Event, WebhookEventTrigger

from apps.billing.catalog_sync import sync_stripe_catalog
from apps.billing.models import Purchase
from apps.usage.services import consume
from apps.wallets.models import CreditGrant, LedgerEntry
from apps.webhooks.models import WebhookEndpoint, WebhookEvent
from devtools.offline_stripe.wire import sign
from tests.factories import FeatureFactory
from tests.ledger import assert_ledger_sound, wallet_of
from tests.stripe_helpers import KEY, SUCCESS_URL, buy, checkout, pay, refund

pytestmark = pytest.mark.django_db

D = Decimal


def test_a_paid_checkout_grants_the_pack_once_at_the_price_paid(
    authed_client, account, pack, offline_stripe, stripe_events, webhook
):
    session_id = buy(authed_client, account, pack, offline_stripe)
    webhook.deliver(stripe_events.take())

    wallet = wallet_of(account, pack.credit_type)
    assert wallet.balance == D(1000)
    grant = CreditGrant.objects.get(account=account)
    assert grant.reference == session_id
    assert grant.source == CreditGrant.Source.PURCHASE
    assert grant.unit_price == D("0.01")  # 10.00 USD / 1000 credits
    purchase = Purchase.objects.get(checkout_session_id=session_id)
    assert purchase.status == Purchase.Status.PAID
    assert purchase.grant == grant
    assert purchase.amount_paid == D("10.00")
    assert purchase.payment_intent_id.startswith("pi_")
    assert_ledger_sound(account)


def test_the_same_event_three_times_and_out_of_order_grants_once(
    authed_client, account, pack, offline_stripe, stripe_events, webhook
):
    buy(authed_client, account, pack, offline_stripe)
    events = stripe_events.take()
    completed = [e for e in events if e["type"] == "checkout.session.completed"]
    # Stripe retries: the completion first, three times, then everything else backwards.
    webhook.deliver(completed * 3 + list(reversed(events)))
    # A second event about the same session (another id) changes nothing either.
    again = dict(
        completed[0], id="evt_second_delivery", type="checkout.session.async_payment_succeeded"
    )
    webhook.deliver([again])

    assert wallet_of(account, pack.credit_type).balance == D(1000)
    assert CreditGrant.objects.filter(account=account).count() == 1
    assert LedgerEntry.objects.filter(account=account, kind="grant").count() == 1
    assert_ledger_sound(account)


def test_a_bad_signature_is_refused_and_writes_nothing(
    authed_client, account, pack, offline_stripe, stripe_events, webhook, client
):
    buy(authed_client, account, pack, offline_stripe)
    completed = stripe_events.of_type("checkout.session.completed")[0]

    forged = webhook.post(completed, secret="whsec_not_the_endpoints_secret")
    stale = webhook.post(completed, timestamp=1_000_000_000)  # a replay from 2001
    swapped = client.post(  # signed for one body, sent with another
        webhook.url,
        data=json.dumps(dict(completed, pending_webhooks=9)),
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=sign(json.dumps(completed), webhook.secret),
    )

    assert [forged.status_code, stale.status_code, swapped.status_code] == [400, 400, 400]
    assert not Event.objects.exists()
    assert not CreditGrant.objects.exists()
    assert WebhookEventTrigger.objects.filter(valid=False).count() == 3


def test_an_unpaid_or_expired_session_grants_nothing(
    authed_client, account, pack, offline_stripe, stripe_events, webhook
):
    answer = authed_client.post(
        f"/api/v1/accounts/{account.external_id}/checkout",
        {"credit_pack": pack.code, "success_url": "https://a.example/ok",
         "cancel_url": "https://a.example/no"},
        format="json",
    )  # fmt: skip
    session_id = answer.json()["session_id"]
    session = offline_stripe.get("checkout.session", session_id)
    session["status"] = "expired"
    webhook.deliver([offline_stripe.run(offline_stripe.emit, "checkout.session.expired", session)])

    assert Purchase.objects.get(checkout_session_id=session_id).status == Purchase.Status.EXPIRED
    assert not CreditGrant.objects.exists()


def test_a_partial_refund_claws_back_the_same_share_of_what_is_left(
    authed_client, account, pack, offline_stripe, stripe_events, webhook
):
    session_id = buy(authed_client, account, pack, offline_stripe)
    webhook.deliver(stripe_events.take())
    purchase = Purchase.objects.get(checkout_session_id=session_id)

    refund(offline_stripe, purchase, 300)  # 3.00 of 10.00
    webhook.deliver(stripe_events.take())

    assert wallet_of(account, pack.credit_type).balance == D(700)
    purchase.refresh_from_db()
    assert purchase.amount_refunded == D("3.00")
    assert purchase.credits_clawed_back == D(300)
    void = LedgerEntry.objects.get(account=account, kind="void")
    assert void.amount == D(-300)
    assert "refund" in void.reason and purchase.payment_intent_id in void.reason

    # The rest, in two steps, one delivered twice: exactly the pack, never more.
    refund(offline_stripe, purchase, 333)
    refund(offline_stripe, purchase, 367)
    events = stripe_events.take()
    webhook.deliver(events + events)
    assert wallet_of(account, pack.credit_type).balance == D(0)
    purchase.refresh_from_db()
    assert purchase.credits_clawed_back == D(1000)
    assert_ledger_sound(account)


def test_a_refund_never_takes_spent_credits(
    authed_client, account, pack, offline_stripe, stripe_events, webhook
):
    session_id = buy(authed_client, account, pack, offline_stripe)
    webhook.deliver(stripe_events.take())
    feature = FeatureFactory(code="api_call", credit_type=pack.credit_type)
    consume(account=account, feature=feature.code, quantity=D(900))
    purchase = Purchase.objects.get(checkout_session_id=session_id)

    refund(offline_stripe, purchase, 500)  # half: 500 credits, but only 100 are left
    webhook.deliver(stripe_events.take())

    wallet = wallet_of(account, pack.credit_type)
    assert wallet.balance == D(0)
    purchase.refresh_from_db()
    assert purchase.credits_clawed_back == D(100)
    assert_ledger_sound(account)


def test_a_dispute_claws_back_what_is_left_of_the_purchase(
    authed_client, account, pack, offline_stripe, stripe_events, webhook
):
    session_id = buy(authed_client, account, pack, offline_stripe)
    webhook.deliver(stripe_events.take())
    purchase = Purchase.objects.get(checkout_session_id=session_id)
    charge_id = offline_stripe.get("payment_intent", purchase.payment_intent_id)["latest_charge"]

    answer = requests.post(f"{offline_stripe.url}/_offline/charges/{charge_id}/dispute", timeout=10)
    assert answer.status_code == 200
    events = stripe_events.take()
    assert [e["type"] for e in events] == ["charge.dispute.created"]
    webhook.deliver(events * 2)

    assert wallet_of(account, pack.credit_type).balance == D(0)
    purchase.refresh_from_db()
    assert purchase.amount_disputed == D("10.00")
    assert purchase.credits_clawed_back == D(1000)
    assert_ledger_sound(account)


def test_a_refund_that_arrives_before_the_payment_is_applied_when_the_payment_is(
    authed_client, account, pack, offline_stripe, stripe_events, webhook
):
    session_id = buy(authed_client, account, pack, offline_stripe)
    paid = stripe_events.take()
    intent = offline_stripe.get("checkout.session", session_id)["payment_intent"]
    stripe.Refund.create(
        api_key="sk_test_OfflineStandInNotASecret0000", payment_intent=intent, amount=250
    )
    webhook.deliver(stripe_events.take())  # the refund first: nothing to claw back yet
    webhook.deliver(paid)

    assert wallet_of(account, pack.credit_type).balance == D(750)
    assert_ledger_sound(account)


# --- Stripe's amount must be what was sold ----------------------------------------------


def test_checkout_is_refused_while_the_pack_differs_from_its_stripe_price(
    authed_client, account, pack, offline_stripe
):
    pack.price = D("12.00")  # changed in the admin, not synced to Stripe yet
    pack.save()
    answer = authed_client.post(
        f"/api/v1/accounts/{account.external_id}/checkout",
        {"credit_pack": pack.code, "success_url": SUCCESS_URL, "cancel_url": SUCCESS_URL},
        format="json",
    )
    assert answer.status_code == 400
    assert "changed since it was synced to Stripe" in answer.json()["error"]["message"]
    assert not Purchase.objects.exists()

    sync_stripe_catalog()
    checkout(authed_client, account, credit_pack=pack.code)
    assert Purchase.objects.get().price == D("12.00")


def test_a_session_paid_at_another_amount_grants_nothing_and_is_flagged_for_finance(
    authed_client, admin_client, account, pack, offline_stripe, stripe_events, webhook
):
    WebhookEndpoint.objects.create(account=account, url="http://127.0.0.1:9/hooks")
    session_id = checkout(authed_client, account, credit_pack=pack.code)
    offline_stripe.get("checkout.session", session_id)["amount_total"] = 500  # not 10.00
    pay(offline_stripe, session_id)
    events = stripe_events.take()
    webhook.deliver(events + events)

    purchase = Purchase.objects.get(checkout_session_id=session_id)
    assert purchase.status == Purchase.Status.MISMATCH
    assert purchase.grant is None
    assert "5.00 USD" in purchase.mismatch_note and "10.00 USD" in purchase.mismatch_note
    assert not CreditGrant.objects.filter(account=account).exists()
    alerts = WebhookEvent.objects.filter(account=account, type="purchase.mismatch")
    assert alerts.count() == 1  # once, however often Stripe delivers
    assert alerts.get().data["checkout_session"] == session_id
    for status, listed in (("mismatch", [purchase.pk]), ("paid", [])):
        answer = admin_client.get(f"/admin/billing/purchase/?status={status}")
        assert [p.pk for p in answer.context["cl"].result_list] == listed
    page = admin_client.get(f"/admin/billing/purchase/{purchase.pk}/change/").content.decode()
    assert purchase.mismatch_note in page


def test_a_payment_intent_at_another_amount_grants_nothing_whatever_its_metadata_says(
    authed_client, account, pack, offline_stripe, stripe_events, webhook
):
    buy(authed_client, account, pack, offline_stripe)
    webhook.deliver(stripe_events.take())
    customer = offline_stripe.get("checkout.session", Purchase.objects.get().checkout_session_id)
    intent = stripe.PaymentIntent.create(
        api_key=KEY,
        customer=customer["customer"],
        amount=100,  # 1.00 USD for a 10.00 USD pack
        currency="usd",
        off_session=True,
        confirm=True,
        metadata={"creditdesk_auto_recharge": "1", "creditdesk_account": "acme",
                  "credit_pack": pack.code},
    )  # fmt: skip
    webhook.deliver(stripe_events.take())

    purchase = Purchase.objects.get(payment_intent_id=intent["id"])
    assert purchase.status == Purchase.Status.MISMATCH
    assert purchase.grant is None
    assert wallet_of(account, pack.credit_type).balance == D(1000)  # the first pack only


# --- disputes: chargebacks only, and a won dispute gives the credits back -----------------


def dispute(offline_stripe, purchase, **params):
    charge_id = offline_stripe.get("payment_intent", purchase.payment_intent_id)["latest_charge"]
    answer = requests.post(
        f"{offline_stripe.url}/_offline/charges/{charge_id}/dispute", data=params, timeout=10
    )
    assert answer.status_code == 200, answer.text
    return answer.json()["id"]


def close_dispute(offline_stripe, dispute_id, status):
    answer = requests.post(
        f"{offline_stripe.url}/_offline/disputes/{dispute_id}/close",
        data={"status": status},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text


def test_an_inquiry_takes_nothing_until_it_becomes_a_chargeback(
    authed_client, account, pack, offline_stripe, stripe_events, webhook
):
    buy(authed_client, account, pack, offline_stripe)
    webhook.deliver(stripe_events.take())
    purchase = Purchase.objects.get()

    inquiry = dispute(offline_stripe, purchase, status="warning_needs_response")
    webhook.deliver(stripe_events.take())
    assert wallet_of(account, pack.credit_type).balance == D(1000)
    close_dispute(offline_stripe, inquiry, "warning_closed")
    webhook.deliver(stripe_events.take())
    assert wallet_of(account, pack.credit_type).balance == D(1000)

    close_dispute(offline_stripe, dispute(offline_stripe, purchase), "lost")
    webhook.deliver(stripe_events.take())
    assert wallet_of(account, pack.credit_type).balance == D(0)
    assert_ledger_sound(account)


def test_a_won_dispute_gives_back_the_credits_it_took_once_at_their_cost(
    authed_client, account, pack, offline_stripe, stripe_events, webhook
):
    FeatureFactory(code="api_call", credit_type=pack.credit_type)
    buy(authed_client, account, pack, offline_stripe)
    webhook.deliver(stripe_events.take())
    consume(account=account, feature="api_call", quantity=D(400))
    purchase = Purchase.objects.get()

    disputed = dispute(offline_stripe, purchase)
    webhook.deliver(stripe_events.take())
    assert wallet_of(account, pack.credit_type).balance == D(0)  # 600 left were taken

    close_dispute(offline_stripe, disputed, "won")
    events = stripe_events.take()
    webhook.deliver(events + events)

    assert wallet_of(account, pack.credit_type).balance == D(600)  # what was taken, not 1,000
    returned = CreditGrant.objects.get(
        account=account, reference__startswith=f"dispute-won:{disputed}:"
    )
    assert returned.amount == D(600)
    assert returned.unit_price == purchase.grant.unit_price
    purchase.refresh_from_db()
    assert purchase.amount_disputed == D(0)
    assert purchase.credits_clawed_back == D(0)
    assert_ledger_sound(account)
