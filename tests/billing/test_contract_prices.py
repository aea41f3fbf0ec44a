"""A contract's price billed through Stripe (docs/contracts.md, "Billed through Stripe"): a
Stripe-backed subscription pays the contract's own Stripe Price for every period that starts
while the contract is live, and its plan's again after."""

import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest
from django.db import connection

from apps.billing.catalog_sync import sync_stripe_catalog
from apps.billing.contract_prices import bill_contracts_at_stripe
from apps.billing.plan_moves import version_of
from apps.catalog.contracts import put_contract, remove_contract
from apps.catalog.pricebook import read_document
from apps.catalog.services import import_catalog
from apps.wallets.models import CreditGrant
from apps.webhooks.models import WebhookEndpoint, WebhookEvent
from tests.factories import AccountFactory
from tests.stripe_helpers import control, ours, subscribe
from tests.workers import real_worker

JAN_31 = datetime(2026, 1, 31, 12, 0, tzinfo=UTC)
FEB_28 = datetime(2026, 2, 28, 12, 0, tzinfo=UTC)
MAR_31 = datetime(2026, 3, 31, 12, 0, tzinfo=UTC)

CATALOG = """
version: 1
credit_types:
- {code: credits, name: Credits}
features:
- {code: api_call, name: API call, credit_type: credits, credits_per_unit: "1"}
plans:
- code: starter
  name: Starter
  price: 29
  included_credits: {credits: 2000}
"""


def deal(**terms):
    """A contract body: 5,000 credits a period for 1,200.00 USD, from now."""
    return {"price": "1200.00", "currency": "USD", "included_credits": {"credits": "5000"},
            "overage": {"unit_price": "0.01"}, **terms}  # fmt: skip


def stripe_price_of(offline_stripe, stripe_id):
    return offline_stripe.get("subscription", stripe_id)["items"]["data"][0]["price"]


def plan_periods(account):
    grants = CreditGrant.objects.filter(account=account, source="plan_period").order_by("id")
    return [(g.amount, g.basis_amount) for g in grants]


@pytest.fixture
def starter(db, offline_stripe):
    import_catalog(raw=read_document(CATALOG, filename="catalog.yaml"))
    sync_stripe_catalog()
    return version_of(code="starter")


@pytest.fixture
def subscriber(starter, authed_client, offline_stripe, webhook, stripe_events, time_machine):
    """Acme, on starter through Stripe since January 31: `(account, Stripe's subscription id)`."""
    time_machine.move_to(JAN_31, tick=True)
    account = AccountFactory(external_id="acme")
    stripe_id = subscribe(authed_client, account, starter, offline_stripe)
    webhook.deliver(stripe_events.take())
    return account, stripe_id


def renew_at_stripe(offline_stripe, webhook, stripe_events, time_machine, stripe_id, when):
    time_machine.move_to(when + timedelta(minutes=1), tick=False)
    control(offline_stripe, f"subscriptions/{stripe_id}/renew")
    webhook.deliver(stripe_events.take())


def test_stripe_bills_the_contract_price_while_the_contract_lasts_then_the_plan_price_again(
    starter, subscriber, offline_stripe, webhook, stripe_events, time_machine
):
    account, stripe_id = subscriber
    contract, _ = put_contract(account=account, raw=deal(ends_at="2026-03-15T00:00:00Z"))

    assert bill_contracts_at_stripe().stripe_prices == 1
    price = stripe_price_of(offline_stripe, stripe_id)
    assert (price["unit_amount"], price["currency"], price["recurring"]["interval"]) == (
        120000, "usd", "month",
    )  # fmt: skip
    assert price["metadata"]["creditdesk_item"] == f"contract:{contract.pk}"
    assert bill_contracts_at_stripe().stripe_prices == 0  # in step: nothing to do
    webhook.deliver(stripe_events.take())  # customer.subscription.updated: the plan stays
    assert (ours(stripe_id).plan, ours(stripe_id).scheduled_plan) == (starter, None)

    # February 28: Stripe bills 1,200.00; its invoice renews into the contract's period.
    renew_at_stripe(offline_stripe, webhook, stripe_events, time_machine, stripe_id, FEB_28)
    assert plan_periods(account) == [(D(2000), D(29)), (D(5000), D(1200))]

    # The contract ends on March 15, before the next period: the plan's price is back.
    assert bill_contracts_at_stripe().stripe_prices == 1
    assert stripe_price_of(offline_stripe, stripe_id)["id"] == starter.stripe_price_id
    renew_at_stripe(offline_stripe, webhook, stripe_events, time_machine, stripe_id, MAR_31)
    assert plan_periods(account)[-1] == (D(2000), D(29))
    assert not WebhookEvent.objects.filter(type="purchase.mismatch").exists()


def test_a_new_price_on_the_contract_makes_a_new_stripe_price_and_a_removed_one_the_plans(
    starter, subscriber, offline_stripe
):
    account, stripe_id = subscriber
    put_contract(account=account, raw=deal())
    bill_contracts_at_stripe()
    first = stripe_price_of(offline_stripe, stripe_id)["id"]

    contract, _ = put_contract(account=account, raw=deal(price="1500.00"))
    assert bill_contracts_at_stripe().stripe_prices == 1
    contract.refresh_from_db()
    now = stripe_price_of(offline_stripe, stripe_id)
    assert now["id"] == contract.stripe_price_id != first and now["unit_amount"] == 150000
    assert offline_stripe.get("price", first)["active"] is False  # the old one archived

    remove_contract(account=account)
    assert bill_contracts_at_stripe().stripe_prices == 1  # found by the price it pays
    assert stripe_price_of(offline_stripe, stripe_id)["id"] == starter.stripe_price_id


def test_an_invoice_at_the_plan_price_while_the_contract_price_is_due_grants_nothing(
    starter, subscriber, offline_stripe, webhook, stripe_events, time_machine
):
    """The job did not run before Stripe billed: the customer paid 29.00, the period was
    sold at 1,200.00. Finance is told and decides; nothing is granted meanwhile."""
    account, stripe_id = subscriber
    WebhookEndpoint.objects.create(account=account, url="http://127.0.0.1:9/hooks")
    put_contract(account=account, raw=deal())
    renew_at_stripe(offline_stripe, webhook, stripe_events, time_machine, stripe_id, FEB_28)
    assert plan_periods(account) == [(D(2000), D(29))]
    mismatch = WebhookEvent.objects.get(type="purchase.mismatch")
    assert mismatch.data["sold"] == {"amount": "1200", "currency": "USD"}
    assert mismatch.data["paid"] == {"amount": "29", "currency": "USD"}
    assert ours(stripe_id).renewal_held_since is not None


def test_a_contract_in_another_currency_is_not_billed_at_stripe_and_says_why(
    starter, subscriber, offline_stripe, webhook, stripe_events, time_machine
):
    """Stripe bills a subscription in one currency: the plan's price stays, at Stripe and on
    the books, and the job says why at every run. The contract's credits still apply."""
    account, stripe_id = subscriber
    put_contract(account=account, raw=deal(currency="EUR"))
    counts = bill_contracts_at_stripe()
    assert (counts.stripe_prices, counts.failures) == (0, 1)
    assert "Stripe bills this subscription in USD" in counts.errors[0]
    assert stripe_price_of(offline_stripe, stripe_id)["id"] == starter.stripe_price_id
    renew_at_stripe(offline_stripe, webhook, stripe_events, time_machine, stripe_id, FEB_28)
    assert plan_periods(account)[-1] == (D(5000), D(29))
    assert not WebhookEvent.objects.filter(type="purchase.mismatch").exists()


def test_a_contract_starting_after_the_next_period_leaves_stripe_alone_until_then(
    starter, subscriber, offline_stripe, webhook, stripe_events, time_machine
):
    account, stripe_id = subscriber
    put_contract(account=account, raw=deal(starts_at="2026-03-01T00:00:00Z"))
    assert bill_contracts_at_stripe().stripe_prices == 0  # February is the plan's
    renew_at_stripe(offline_stripe, webhook, stripe_events, time_machine, stripe_id, FEB_28)
    assert bill_contracts_at_stripe().stripe_prices == 1  # March 31 starts under the contract
    assert stripe_price_of(offline_stripe, stripe_id)["unit_amount"] == 120000


def test_a_checkout_under_a_priced_contract_subscribes_at_the_contract_price(
    starter, authed_client, offline_stripe, webhook, stripe_events, time_machine
):
    time_machine.move_to(JAN_31, tick=True)
    account = AccountFactory(external_id="acme")
    contract, _ = put_contract(account=account, raw=deal(starts_at="2026-01-01T00:00:00Z"))
    stripe_id = subscribe(authed_client, account, starter, offline_stripe)
    webhook.deliver(stripe_events.take())
    contract.refresh_from_db()
    assert stripe_price_of(offline_stripe, stripe_id)["id"] == contract.stripe_price_id
    assert ours(stripe_id).plan == starter
    assert plan_periods(account) == [(D(5000), D(1200))]
    assert not WebhookEvent.objects.filter(type="purchase.mismatch").exists()


@pytest.mark.redis
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_signing_a_contract_queues_the_job_which_a_real_worker_runs(
    starter, subscriber, offline_stripe
):
    account, stripe_id = subscriber
    with real_worker():
        contract, _ = put_contract(account=account, raw=deal())  # the job is queued on commit
        for _ in range(100):
            if stripe_price_of(offline_stripe, stripe_id)["id"] != starter.stripe_price_id:
                break
            time.sleep(0.1)
    contract.refresh_from_db()
    assert stripe_price_of(offline_stripe, stripe_id)["id"] == contract.stripe_price_id
    connection.close()
