"""Platform fees over months (apps/revenue/fees.py): billed when the period starts,
recognised by elapsed time with cumulative rounding, deferred in between."""

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from apps.revenue.fees import FeeFigures, fee_figures, month_bounds, recognised_through
from apps.revenue.models import RatableFee
from tests.factories import PlanFactory, SubscriptionFactory

D = Decimal
pytestmark = pytest.mark.django_db


def fee(amount, start, end, *, plan=None, currency="USD"):
    subscription = SubscriptionFactory(**({"plan": plan} if plan else {}))
    return RatableFee.objects.create(
        subscription=subscription, account=subscription.account, plan=subscription.plan,
        currency=currency, period_start=start, period_end=end, amount=D(amount),
    )  # fmt: skip


def at(month, day, hour=0):
    return datetime(2026, month, day, hour, tzinfo=UTC)


def month(m):
    return fee_figures(**dict(zip(("month_start", "month_end"), month_bounds(date(2026, m, 1)),
                                  strict=True)))  # fmt: skip


def test_a_fee_over_two_months_is_recognised_by_elapsed_time_and_adds_up_exactly():
    plan = PlanFactory()
    fee("10.00", at(1, 20), at(2, 20), plan=plan)  # 12 of its 31 days in January
    key = ("USD", plan.pk)
    january, february, march = month(1)[key], month(2)[key], month(3)
    assert january == FeeFigures("USD", plan.pk, D("10.00"), D("3.87"), D("6.13"))
    assert february == FeeFigures("USD", plan.pk, D("0"), D("6.13"), D("0.00"))
    assert january.recognised + february.recognised == D("10.00")
    assert march == {}


def test_cumulative_rounding_makes_the_months_of_a_long_period_add_up():
    plan = PlanFactory()
    fee("100.00", at(1, 1, 7), datetime(2027, 1, 1, 7, tzinfo=UTC), plan=plan)  # a year
    months = [month(m)[("USD", plan.pk)] for m in range(1, 13)]
    january_2027 = fee_figures(month_start=date(2027, 1, 1), month_end=date(2027, 2, 1))
    parts = [m.recognised for m in months] + [january_2027[("USD", plan.pk)].recognised]
    assert sum(parts) == D("100.00")
    assert months[0].billed == D("100.00") and all(m.billed == 0 for m in months[1:])
    assert months[5].deferred == D("100.00") - sum(parts[:6])
    assert len(set(parts[1:12])) > 1  # months differ in length: not a flat 1/12


def test_fees_are_reported_per_currency_and_plan_and_can_be_filtered():
    pro, team = PlanFactory(), PlanFactory()
    fee("8.25", at(3, 1), at(4, 1), plan=pro)
    fee("8.25", at(3, 1), at(4, 1), plan=pro)
    fee("500", at(3, 1), at(4, 1), plan=team, currency="JPY")
    figures = month(3)
    assert figures[("USD", pro.pk)] == FeeFigures("USD", pro.pk, D("16.50"), D("16.50"), D("0"))
    assert figures[("JPY", team.pk)].recognised == D("500")
    start, end = month_bounds(date(2026, 3, 1))
    assert list(fee_figures(month_start=start, month_end=end, currency="JPY")) == [("JPY", team.pk)]
    assert list(fee_figures(month_start=start, month_end=end, plan=pro)) == [("USD", pro.pk)]


def test_recognised_through_rounds_half_up_to_the_smallest_unit():
    terms = {"start": at(1, 1), "end": at(1, 5), "currency": "USD"}
    assert recognised_through(amount=D("0.10"), moment=at(1, 1, 18), **terms) == D("0.02")
    assert recognised_through(amount=D("0.10"), moment=at(1, 1), **terms) == 0
    assert recognised_through(amount=D("0.10"), moment=at(1, 9), **terms) == D("0.10")
    yen = {**terms, "currency": "JPY"}
    assert recognised_through(amount=D("5"), moment=at(1, 3), **yen) == D("3")  # 2.5 half up
