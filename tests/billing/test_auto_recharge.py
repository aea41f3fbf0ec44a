"""Auto-recharge: the card saved by a pack checkout buys the pack off-session when available
credits fall below the threshold — once per crossing, never beyond the monthly cap, an
alert when it fails."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone
from prometheus_client import REGISTRY

from apps.billing.catalog_sync import sync_stripe_catalog
from apps.billing.models import AutoRecharge, Purchase
from apps.billing.recharge import RESUME_AFTER, _recharge, run_auto_recharges
from apps.catalog.models import CreditPack
from apps.jobs.counts import JobCounts
from apps.jobs.tasks import TASKS
from apps.usage.services import consume
from apps.wallets.models import CreditGrant
from apps.webhooks.models import WebhookEndpoint, WebhookEvent
from tests.factories import AccountFactory, CreditPackFactory, FeatureFactory
from tests.ledger import assert_ledger_sound, give, wallet_of
from tests.stripe_helpers import checkout, pay
from tests.workers import real_worker

pytestmark = pytest.mark.django_db
D = Decimal


def buy(authed_client, account, pack, offline_stripe, webhook, stripe_events, card="4242"):
    pay(offline_stripe, checkout(authed_client, account, credit_pack=pack.code), card=card)
    webhook.deliver(stripe_events.take())


@pytest.fixture
def recharging(authed_client, account, pack, offline_stripe, webhook, stripe_events):
    FeatureFactory(code="api_call", credit_type=pack.credit_type)
    WebhookEndpoint.objects.create(account=account, url="http://127.0.0.1:9/alerts")

    def setup(card="4242", cap="25.00"):
        buy(authed_client, account, pack, offline_stripe, webhook, stripe_events, card=card)
        return AutoRecharge.objects.create(
            account=account, credit_pack=pack, threshold=D(200), monthly_cap=D(cap)
        )

    return setup


def spend(account, credits):
    consume(account=account, feature="api_call", quantity=D(credits))


def test_falling_below_the_threshold_buys_the_pack_once_per_crossing(
    recharging, account, pack, webhook, stripe_events
):
    recharging()
    spend(account, 850)  # 150 left, below 200

    assert run_auto_recharges().recharges == 1
    assert wallet_of(account, pack.credit_type).balance == D(1150)
    assert run_auto_recharges().recharges == 0  # the same crossing buys once
    bought = Purchase.objects.get(origin="auto_recharge")
    assert (bought.status, bought.amount_paid) == ("paid", D("10.00"))
    assert CreditGrant.objects.get(reference=bought.payment_intent_id).amount == D(1000)

    webhook.deliver(stripe_events.take())  # payment_intent.succeeded and the rest: no second grant
    assert wallet_of(account, pack.credit_type).balance == D(1150)
    assert WebhookEvent.objects.filter(type="auto_recharge.succeeded").count() == 1

    spend(account, 1000)  # back above 200 in between, so this is a new crossing
    assert run_auto_recharges().recharges == 1
    assert wallet_of(account, pack.credit_type).balance == D(1150)
    assert_ledger_sound(account)


def test_the_monthly_cap_is_never_exceeded(recharging, account, pack):
    recharge = recharging(cap="15.00")  # room for one 10.00 pack this month
    spend(account, 850)
    assert run_auto_recharges().recharges == 1
    spend(account, 1000)
    counts = run_auto_recharges()

    assert counts.recharges == 0
    recharge.refresh_from_db()
    assert recharge.last_result == "monthly_cap_reached"
    assert wallet_of(account, pack.credit_type).balance == D(150)
    assert Purchase.objects.filter(origin="auto_recharge").count() == 1
    failed = WebhookEvent.objects.get(type="auto_recharge.failed")
    assert failed.data["reason"] == "monthly_cap_reached"


def test_a_declined_card_grants_nothing_and_alerts(recharging, account, pack):
    recharge = recharging(card="0002")  # saved; off-session charges decline
    spend(account, 900)
    declines = stripe_errors(operation="PaymentIntent.create", error="CardError")

    counts = run_auto_recharges()

    assert (counts.recharges, counts.failures) == (0, 1)
    recharge.refresh_from_db()
    assert recharge.last_result == "card_declined"
    assert recharge.charging_since is None
    assert wallet_of(account, pack.credit_type).balance == D(100)
    assert WebhookEvent.objects.get(type="auto_recharge.failed").data["reason"] == "card_declined"
    # Counted in the metrics as every failed Stripe call is (docs/metrics.md).
    assert stripe_errors(operation="PaymentIntent.create", error="CardError") == declines + 1
    assert run_auto_recharges().failures == 0  # not retried until the balance recovers


def stripe_errors(**labels):
    return REGISTRY.get_sample_value("creditdesk_stripe_errors_total", labels) or 0


def test_an_attempt_cut_after_the_claim_is_finished_with_the_same_charge(
    recharging, account, pack, offline_stripe
):
    recharge = recharging()
    spend(account, 850)
    # The job claimed the crossing and died before (or just after) Stripe charged.
    AutoRecharge.objects.filter(pk=recharge.pk).update(
        armed=False, attempt=1, charging_since=timezone.now()
    )
    assert run_auto_recharges().recharges == 0  # as far as anyone knows, still in flight
    AutoRecharge.objects.filter(pk=recharge.pk).update(
        charging_since=timezone.now() - RESUME_AFTER - timedelta(seconds=1)
    )

    assert run_auto_recharges().recharges == 1
    assert run_auto_recharges().recharges == 0
    assert wallet_of(account, pack.credit_type).balance == D(1150)
    assert len(auto_recharge_intents(offline_stripe)) == 1


def cut(recharge, ago):
    AutoRecharge.objects.filter(pk=recharge.pk).update(
        armed=False, attempt=recharge.attempt + 1, charging_since=timezone.now() - ago
    )


def auto_recharge_intents(offline_stripe):
    return [p for p in offline_stripe.all("payment_intent").values()
            if "creditdesk_auto_recharge" in p["metadata"]]  # fmt: skip


def test_a_run_working_from_a_stale_list_charges_nothing(recharging, account, pack, offline_stripe):
    recharge = recharging()
    spend(account, 850)
    assert run_auto_recharges().recharges == 1

    _recharge(recharge.pk, timezone.now(), JobCounts())  # listed before the first run charged

    assert len(auto_recharge_intents(offline_stripe)) == 1
    assert wallet_of(account, pack.credit_type).balance == D(1150)


def test_a_cut_attempt_is_finished_even_after_the_terms_were_disabled(
    recharging, account, pack, offline_stripe
):
    recharge = recharging()
    spend(account, 850)
    cut(recharge, timedelta(minutes=10))
    AutoRecharge.objects.filter(pk=recharge.pk).update(enabled=False)

    assert run_auto_recharges().recharges == 1
    assert len(auto_recharge_intents(offline_stripe)) == 1
    assert AutoRecharge.objects.get(pk=recharge.pk).charging_since is None


def test_a_cut_attempt_whose_payment_arrived_is_not_charged_again(
    recharging, account, pack, offline_stripe
):
    recharge = recharging()
    spend(account, 850)
    assert run_auto_recharges().recharges == 1
    recharge.refresh_from_db()
    # As if the job died after Stripe charged; the webhook granted the Purchase meanwhile.
    AutoRecharge.objects.filter(pk=recharge.pk).update(
        charging_since=Purchase.objects.get(origin="auto_recharge").created_at
        - RESUME_AFTER - timedelta(minutes=1)
    )  # fmt: skip

    assert run_auto_recharges().recharges == 1  # finished, not bought again
    assert len(auto_recharge_intents(offline_stripe)) == 1
    assert wallet_of(account, pack.credit_type).balance == D(1150)


def test_an_attempt_cut_longer_ago_than_stripe_keeps_keys_is_not_charged_blindly(
    recharging, account, pack, offline_stripe
):
    recharge = recharging()
    spend(account, 850)
    cut(recharge, timedelta(days=2))

    counts = run_auto_recharges()

    assert (counts.recharges, counts.failures) == (0, 1)
    assert auto_recharge_intents(offline_stripe) == []
    recharge.refresh_from_db()
    assert (recharge.last_result, recharge.charging_since) == ("interrupted_attempt_expired", None)
    assert WebhookEvent.objects.get(type="auto_recharge.failed").data["reason"] == (
        "interrupted_attempt_expired"
    )


def test_one_accounts_failure_does_not_stop_the_others(recharging, account, pack):
    recharging()
    spend(account, 850)
    other = AccountFactory(external_id="broken")
    odd = CreditPackFactory(code="odd", credit_type=pack.credit_type, price=D("10.50"))
    sync_stripe_catalog()
    CreditPack.objects.filter(pk=odd.pk).update(currency="JPY")  # 10.50 yen cannot be charged
    give(other, 10, credit_type=pack.credit_type)
    AutoRecharge.objects.create(account=other, credit_pack=odd, threshold=D(200),
                                monthly_cap=D(100))  # fmt: skip

    counts = run_auto_recharges()

    assert (counts.recharges, counts.failures) == (1, 1)
    assert wallet_of(account, pack.credit_type).balance == D(1150)


@pytest.mark.redis
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_an_auto_recharge_is_bought_by_a_real_worker(recharging, account, pack):
    recharging()
    spend(account, 850)

    with real_worker():
        counts = TASKS["run_auto_recharges"].delay().get(timeout=60)

    assert counts["recharges"] == 1
    assert wallet_of(account, pack.credit_type).balance == D(1150)
    assert Purchase.objects.get(account=account, origin="auto_recharge").status == "paid"
    assert_ledger_sound(account)
    connection.close()
