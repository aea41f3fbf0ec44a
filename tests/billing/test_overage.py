"""Overage at period end: the debt is settled by an `overage` grant billed at the plan's
overage unit price, sent to Stripe once as an invoice item on the next invoice."""

from datetime import timedelta
from decimal import Decimal

import pytest
import stripe
from django.db import connection

from apps.billing.catalog_sync import sync_stripe_catalog
from apps.billing.models import OverageCharge
from apps.billing.overage import send_overage_charges
from apps.jobs.models import JobRun
from apps.jobs.tasks import TASKS
from apps.periods.services import put_account_on_plan, renew_due_subscriptions
from apps.usage.services import consume
from apps.wallets.models import CreditGrant
from tests.factories import (
    AccountFactory,
    CreditTypeFactory,
    FeatureFactory,
    PlanAllowanceFactory,
    PlanFactory,
    PlanFeatureFactory,
)
from tests.ledger import assert_ledger_sound, wallet_of
from tests.stripe_helpers import KEY, control, ours, subscribe
from tests.workers import empty_queue, real_worker

from .conftest import FEB_28, JAN_31, MAR_31

pytestmark = pytest.mark.django_db
D = Decimal


@pytest.fixture
def plan(db, offline_stripe, time_machine):
    time_machine.move_to(JAN_31, tick=False)
    credits = CreditTypeFactory(code="credits")
    plan = PlanFactory(code="scale", price=D("20.00"), overage_policy="allow",
                       overage_limit=D(500), overage_unit_price=D("0.02"))  # fmt: skip
    PlanAllowanceFactory(plan=plan, credit_type=credits, credits_per_period=D(1000))
    PlanFeatureFactory(plan=plan, feature=FeatureFactory(code="api_call", credit_type=credits))
    sync_stripe_catalog()
    plan.refresh_from_db()
    return plan


def into_overage_then_renew(
    authed_client, account, plan, offline_stripe, stripe_events, webhook, time_machine
):
    """Subscribe through Stripe, use 200 credits past the plan's 1,000, renew at Stripe."""
    stripe_id = subscribe(authed_client, account, plan, offline_stripe)
    webhook.deliver(stripe_events.take())
    consume(account=account, feature="api_call", quantity=D(1200))
    assert wallet_of(account).debt == D(200)
    time_machine.move_to(FEB_28 + timedelta(minutes=1), tick=False)
    control(offline_stripe, f"subscriptions/{stripe_id}/renew")
    webhook.deliver(stripe_events.take())
    return stripe_id


def test_overage_is_billed_once_on_the_next_stripe_invoice_and_the_new_period_stays_whole(
    authed_client, plan, offline_stripe, stripe_events, webhook, time_machine
):
    account = AccountFactory(external_id="acme")
    stripe_id = into_overage_then_renew(
        authed_client, account, plan, offline_stripe, stripe_events, webhook, time_machine
    )

    wallet = wallet_of(account)
    assert (wallet.balance, wallet.debt) == (D(1000), D(0))
    overage = CreditGrant.objects.get(account=account, source="overage")
    assert (overage.amount, overage.debt_settled, overage.remaining) == (D(200), D(200), D(0))
    assert overage.unit_price == D("0.02")
    charge = OverageCharge.objects.get()
    assert (charge.status, charge.amount, charge.subscription) == (
        "pending",
        D("4.00"),
        ours(stripe_id),
    )

    assert send_overage_charges().invoice_items == 1
    assert send_overage_charges().invoice_items == 0  # sent once
    charge.refresh_from_db()
    item = offline_stripe.get("invoiceitem", charge.stripe_invoice_item_id)
    assert (item["amount"], item["currency"], item["subscription"]) == (400, "usd", stripe_id)

    # A crash after Stripe answered but before the row was saved: the retry gets the same item.
    OverageCharge.objects.filter(pk=charge.pk).update(status="pending", stripe_invoice_item_id="")
    send_overage_charges()
    charge.refresh_from_db()
    assert charge.stripe_invoice_item_id == item["id"]
    assert len(offline_stripe.all("invoiceitem")) == 1

    time_machine.move_to(MAR_31 + timedelta(minutes=1), tick=False)
    control(offline_stripe, f"subscriptions/{stripe_id}/renew")
    invoice = stripe.Invoice.retrieve(
        offline_stripe.get("subscription", stripe_id)["latest_invoice"], api_key=KEY
    )
    assert invoice["amount_due"] == 2000 + 400
    assert_ledger_sound(account)


def test_a_manual_plans_overage_is_settled_and_left_for_finance_to_invoice(plan, time_machine):
    account = AccountFactory(external_id="manual")
    put_account_on_plan(account=account, plan=plan)
    consume(account=account, feature="api_call", quantity=D(1100))

    renew_due_subscriptions(now=FEB_28 + timedelta(minutes=1))
    renew_due_subscriptions(now=FEB_28 + timedelta(minutes=2))  # a second run bills nothing more

    assert wallet_of(account).balance == D(1000)
    charge = OverageCharge.objects.get()
    assert (charge.credits, charge.amount) == (D(100), D("2.00"))
    send_overage_charges()
    charge.refresh_from_db()
    assert charge.status == "not_billed" and "Manual plan" in charge.note
    assert_ledger_sound(account)


def test_free_overage_is_paid_back_by_the_next_grant(plan, time_machine):
    plan.overage_unit_price = D(0)
    plan.save()
    account = AccountFactory(external_id="free")
    put_account_on_plan(account=account, plan=plan)
    consume(account=account, feature="api_call", quantity=D(1100))

    renew_due_subscriptions(now=FEB_28 + timedelta(minutes=1))

    assert wallet_of(account).balance == D(900)
    assert not OverageCharge.objects.exists()
    assert_ledger_sound(account)


@pytest.mark.redis
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_overage_is_sent_to_stripe_by_a_real_worker(
    authed_client, plan, offline_stripe, stripe_events, webhook, time_machine
):
    empty_queue()
    account = AccountFactory(external_id="worker-overage")
    into_overage_then_renew(
        authed_client, account, plan, offline_stripe, stripe_events, webhook, time_machine
    )

    # The renewal queued a send on commit; beat's run comes after it and finds nothing left.
    with real_worker(purge=False):
        counts = TASKS["send_overage_charges"].delay().get(timeout=60)

    assert counts.get("invoice_items", 0) == 0
    charge = OverageCharge.objects.get(account=account)
    assert charge.status == "sent"
    assert offline_stripe.get("invoiceitem", charge.stripe_invoice_item_id)["amount"] == 400
    assert len(offline_stripe.all("invoiceitem")) == 1
    assert JobRun.objects.filter(job="send_overage_charges", trigger="beat").count() >= 2
    assert_ledger_sound(account)
    connection.close()


def test_overage_in_yen_is_billed_in_whole_yen(
    authed_client, offline_stripe, stripe_events, webhook, time_machine
):
    time_machine.move_to(JAN_31, tick=False)
    credits = CreditTypeFactory(code="credits")
    plan = PlanFactory(code="scale_jp", price=D("3000"), currency="JPY", overage_policy="allow",
                       overage_limit=D(500), overage_unit_price=D("0.35"))  # fmt: skip
    PlanAllowanceFactory(plan=plan, credit_type=credits, credits_per_period=D(1000))
    PlanFeatureFactory(plan=plan, feature=FeatureFactory(code="api_call", credit_type=credits))
    sync_stripe_catalog()
    plan.refresh_from_db()
    account = AccountFactory(external_id="acme")
    stripe_id = subscribe(authed_client, account, plan, offline_stripe)
    webhook.deliver(stripe_events.take())
    consume(account=account, feature="api_call", quantity=D(1201))  # 201 over: 70.35 yen
    time_machine.move_to(FEB_28 + timedelta(minutes=1), tick=False)
    control(offline_stripe, f"subscriptions/{stripe_id}/renew")
    webhook.deliver(stripe_events.take())

    assert send_overage_charges().invoice_items == 1
    charge = OverageCharge.objects.get()
    assert (charge.status, charge.amount, charge.currency) == ("sent", D(70), "JPY")
    item = offline_stripe.get("invoiceitem", charge.stripe_invoice_item_id)
    assert (item["amount"], item["currency"]) == (70, "jpy")  # yen have no minor unit
