"""Plan periods carry the cost basis of their price split (apps/catalog/pricing.py) and
write the period's platform fee once (docs/revenue.md, "Plan periods: allocating the
price")."""

from django.db import transaction

from apps.accounts.models import Subscription
from apps.periods.services import locked_subscription, renew_due_subscriptions, renew_subscription
from apps.revenue.models import RatableFee
from apps.wallets.models import CreditGrant
from tests.factories import CreditTypeFactory, PlanAllowanceFactory, PlanFactory

from .conftest import APR_30, FEB_28, JAN_31, MAR_31, D, grants, monthly_plan, subscribed


def valued_plan():
    """99.00 a month: 10,000 credits valued 80.00, 120 GPU minutes 30.00, a fee valued 10.00."""
    plan = PlanFactory(billing_interval="month", price=D("99.00"), platform_fee_value=D("10"))
    PlanAllowanceFactory(plan=plan, credit_type=CreditTypeFactory(), credits_per_period=D(10000),
                         standalone_value=D("80.00"))  # fmt: skip
    gpu = CreditTypeFactory(code="gpu", name="GPU minutes")
    PlanAllowanceFactory(plan=plan, credit_type=gpu, credits_per_period=D(120),
                         standalone_value=D("30.00"))  # fmt: skip
    return plan


def bases(account, start):
    return {
        g.reference.rsplit(":", 1)[1]: (g.basis_amount, g.unit_price, g.plan_id)
        for g in grants(account, CreditGrant.Source.PLAN_PERIOD)
        if g.effective_at == start
    }


def fees(subscription):
    return list(
        RatableFee.objects.filter(subscription=subscription).values_list(
            "account_id", "plan_id", "currency", "period_start", "period_end", "amount"
        )
    )


def test_putting_an_account_on_a_plan_splits_the_price_and_writes_the_fee(calendar):
    plan = valued_plan()
    account, subscription = subscribed(plan)
    assert bases(account, JAN_31) == {
        "credits": (D("66.00"), D("0.0066"), plan.pk),
        "gpu": (D("24.75"), D("0.20625"), plan.pk),
    }
    assert fees(subscription) == [(account.pk, plan.pk, "USD", JAN_31, FEB_28, D("8.25"))]


def test_a_renewal_grants_the_bases_and_writes_each_period_fee_once(calendar):
    plan = valued_plan()
    account, subscription = subscribed(plan)
    calendar.move_to(MAR_31, tick=False)
    renew_due_subscriptions()
    renew_due_subscriptions()
    assert bases(account, MAR_31) == bases(account, FEB_28) == bases(account, JAN_31)
    assert [(f[3], f[4], f[5]) for f in fees(subscription)] == [
        (JAN_31, FEB_28, D("8.25")),
        (FEB_28, MAR_31, D("8.25")),
        (MAR_31, APR_30, D("8.25")),
    ]


def test_a_replayed_renewal_writes_no_second_fee_nor_grant(calendar):
    plan = valued_plan()
    account, subscription = subscribed(plan)
    calendar.move_to(FEB_28, tick=False)
    renew_due_subscriptions()
    made = (len(grants(account)), RatableFee.objects.count())
    # Another path that did not see the renewal renews the same period again.
    Subscription.objects.filter(pk=subscription.pk).update(
        current_period_start=JAN_31, current_period_end=FEB_28
    )
    renew_due_subscriptions()
    assert (len(grants(account)), RatableFee.objects.count()) == made == (4, 2)


def test_stripes_paid_renewal_writes_the_fee_and_the_job_then_finds_it_done(calendar):
    plan = valued_plan()
    account, subscription = subscribed(plan)
    with transaction.atomic():
        renew_subscription(subscription=locked_subscription(pk=subscription.pk), until=FEB_28)
    calendar.move_to(FEB_28, tick=False)
    renew_due_subscriptions()
    assert [(f[3], f[5]) for f in fees(subscription)] == [(JAN_31, D("8.25")), (FEB_28, D("8.25"))]
    assert bases(account, FEB_28)["gpu"] == (D("24.75"), D("0.20625"), plan.pk)


def test_a_plan_of_one_credit_type_gives_it_the_whole_price_and_writes_no_fee(calendar):
    plan = monthly_plan(credits=1000, price="30")
    account, subscription = subscribed(plan)
    assert bases(account, JAN_31) == {"credits": (D("30.00"), D("0.03"), plan.pk)}
    assert fees(subscription) == []
