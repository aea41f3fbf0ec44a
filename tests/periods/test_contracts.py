"""A contract at renewal: its included credits, price and overage unit price make the period
it is live at the start of; a period starting after it ended is the plan's again."""

from datetime import timedelta

from apps.catalog.contracts import put_contract
from apps.catalog.models import Plan
from apps.periods.services import renew_due_subscriptions
from apps.revenue.models import RatableFee
from apps.wallets.models import CreditGrant
from tests.factories import CreditTypeFactory
from tests.ledger import assert_ledger_sound, wallet_of

from .conftest import FEB_28, JAN_31, MAR_31, D, grants, monthly_plan, spend, subscribed

PLAN_PERIOD = CreditGrant.Source.PLAN_PERIOD


def sign(account, **terms):
    contract, _ = put_contract(account=account, raw=terms, reason="deal")
    return contract


def test_the_contract_grants_its_credits_at_its_price_from_the_next_period(calendar):
    account, _ = subscribed(monthly_plan(credits=1000, price="30"))
    ends_at = (MAR_31 - timedelta(days=1)).isoformat()
    sign(account, price="500.00", currency="EUR", included_credits={"credits": "10000"},
         overage={"unit_price": "0.01"}, ends_at=ends_at)  # fmt: skip
    renew_due_subscriptions(now=FEB_28)
    first, second = grants(account, PLAN_PERIOD)
    assert (first.amount, first.basis_amount, first.currency) == (D(1000), D(30), "USD")
    assert (second.amount, second.basis_amount, second.currency) == (D(10000), D(500), "EUR")
    assert second.unit_price == D("0.05")
    assert second.reason.startswith(f"{account.subscriptions.get().plan.name} (contract):")

    renew_due_subscriptions(now=MAR_31)  # the contract ended the day before
    third = grants(account, PLAN_PERIOD)[-1]
    assert (third.amount, third.basis_amount, third.currency) == (D(1000), D(30), "USD")
    assert_ledger_sound()


def test_a_contract_without_included_credits_keeps_the_plan_credits_at_its_price(calendar):
    account, _ = subscribed(monthly_plan(credits=1000, price="30"))
    sign(account, price="90.00", currency="USD", overage={"unit_price": "0"})
    renew_due_subscriptions(now=FEB_28)
    renewed = grants(account, PLAN_PERIOD)[-1]
    assert (renewed.amount, renewed.basis_amount) == (D(1000), D(90))


def test_overage_is_billed_at_the_contract_unit_price(calendar):
    plan = monthly_plan(credits=100, price="30")
    Plan.objects.filter(pk=plan.pk).update(
        overage_policy="allow", overage_limit=D(500), overage_unit_price=D("0.02")
    )
    account, _ = subscribed(plan)
    sign(account, overage={"unit_price": "0.5"})
    spend(account, 150)  # 50 below zero
    renew_due_subscriptions(now=FEB_28)
    [overage] = grants(account, CreditGrant.Source.OVERAGE)
    assert (overage.amount, overage.unit_price, overage.basis_amount) == (
        D(50), D("0.5"), D("25.00"),
    )  # fmt: skip
    assert wallet_of(account).balance == D(100)
    assert_ledger_sound()


def test_a_contract_credit_type_the_plan_lacks_splits_the_price_by_credits(calendar):
    """The plan's standalone values (and platform fee) cannot split a price over a credit
    type they do not value: the contract's period is split in proportion to credits."""
    plan = monthly_plan(credits=1000, price="30")
    plan.allowances.update(standalone_value=D(20))
    Plan.objects.filter(pk=plan.pk).update(platform_fee_value=D(10))
    plan.refresh_from_db()
    CreditTypeFactory(code="gpu", name="GPU minutes")
    account, _ = subscribed(plan)
    sign(account, price="40.00", currency="USD", included_credits={"gpu": "3000"},
         overage={"unit_price": "0"})  # fmt: skip
    renew_due_subscriptions(now=FEB_28)
    credits, gpu = sorted(grants(account)[-2:], key=lambda g: g.wallet.credit_type.code)
    assert (credits.amount, credits.basis_amount) == (D(1000), D(10))
    assert (gpu.amount, gpu.basis_amount) == (D(3000), D(30))
    assert not RatableFee.objects.filter(period_start=FEB_28).exists()
    assert RatableFee.objects.get(period_start=JAN_31).amount == D(10)  # the plan's period
