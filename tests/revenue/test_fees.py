"""Platform fees over months (apps/revenue/fees.py): billed when the period starts,
recognised by elapsed time with cumulative rounding, posted into fee lines so that a closed
month keeps its fees, and recognised at once where a period is cut short."""

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from apps.periods.services import put_account_on_plan
from apps.revenue.fees import recognised_through
from apps.revenue.models import FeeLine, RatableFee
from apps.revenue.posting import post_revenue
from apps.revenue.selectors import month_figures, series
from apps.revenue.services import close_month
from apps.revenue.verify import verify_revenue
from tests.factories import (
    AccountFactory,
    CreditTypeFactory,
    PlanAllowanceFactory,
    PlanFactory,
    SubscriptionFactory,
    UserFactory,
)

D = Decimal
pytestmark = pytest.mark.django_db
JAN, FEB, MAR, APR = (date(2026, m, 1) for m in (1, 2, 3, 4))


def fee(amount, start, end, *, plan=None, currency="USD"):
    subscription = SubscriptionFactory(**({"plan": plan} if plan else {}))
    return RatableFee.objects.create(
        subscription=subscription, account=subscription.account, plan=subscription.plan,
        currency=currency, period_start=start, period_end=end, amount=D(amount),
    )  # fmt: skip


def at(month, day, hour=0):
    return datetime(2026, month, day, hour, tzinfo=UTC)


def fees(month, currency="USD"):
    """(billed, recognised, deferred at the month's end) of the month's platform fees."""
    f = month_figures(month=month).get((currency,))
    return None if f is None else (f.fees_billed, f.fees_recognised, f.fees_deferred)


def lines(fee):
    return sorted(FeeLine.objects.filter(fee=fee).values_list("month", "dated_month", "kind",
                                                              "amount"))  # fmt: skip


def test_a_fee_over_two_months_is_recognised_by_elapsed_time_and_adds_up_exactly():
    found = fee("10.00", at(1, 20), at(2, 20))  # 12 of its 31 days in January
    assert post_revenue().fees_posted == 1
    assert fees(JAN) == (D("10.00"), D("3.87"), D("6.13"))
    assert fees(FEB) == (D("0"), D("6.13"), D("0.00"))
    assert fees(MAR) is None
    assert lines(found) == [
        (JAN, JAN, "billed", D("10.00")),
        (JAN, JAN, "recognised", D("3.87")),
        (FEB, FEB, "recognised", D("6.13")),
    ]
    assert post_revenue().fees_posted == 0  # posted once
    assert verify_revenue() == []


def test_cumulative_rounding_makes_the_months_of_a_long_period_add_up():
    found = fee("100.00", at(1, 1, 7), datetime(2027, 1, 1, 7, tzinfo=UTC))  # a year
    post_revenue()
    parts = [amount for _, _, kind, amount in lines(found) if kind == "recognised"]
    assert len(parts) == 13 and sum(parts) == D("100.00")
    assert len(set(parts[1:12])) > 1  # months differ in length: not a flat 1/12
    june = fees(date(2026, 6, 1))
    assert june[2] == D("100.00") - sum(parts[:6])
    assert verify_revenue() == []


def test_fees_are_reported_per_currency_and_plan():
    pro, team = PlanFactory(), PlanFactory()
    fee("8.25", at(3, 1), at(4, 1), plan=pro)
    fee("8.25", at(3, 1), at(4, 1), plan=pro)
    fee("500", at(3, 1), at(4, 1), plan=team, currency="JPY")
    post_revenue()
    by_plan = series(first=MAR, last=MAR, dimension="plan")[MAR]
    usd = by_plan[("USD", pro.pk)]
    assert (usd.fees_billed, usd.fees_recognised, usd.fees_deferred) == (
        D("16.50"), D("16.50"), D("0"),
    )  # fmt: skip
    assert by_plan[("JPY", team.pk)].fees_recognised == D("500")
    only_pro = series(first=MAR, last=MAR, dimension="plan", value=pro.pk)[MAR]
    assert list(only_pro) == [("USD", pro.pk)]
    assert list(series(first=MAR, last=MAR, currency="JPY")[MAR]) == [("JPY",)]


def test_recognised_through_rounds_half_up_to_the_smallest_unit():
    terms = {"start": at(1, 1), "end": at(1, 5), "currency": "USD"}
    assert recognised_through(amount=D("0.10"), moment=at(1, 1, 18), **terms) == D("0.02")
    assert recognised_through(amount=D("0.10"), moment=at(1, 1), **terms) == 0
    assert recognised_through(amount=D("0.10"), moment=at(1, 9), **terms) == D("0.10")
    assert recognised_through(amount=D("0.10"), moment=at(1, 2), cut_at=at(1, 2), **terms) == (
        D("0.10")  # cut short there: all of it
    )
    yen = {**terms, "currency": "JPY"}
    assert recognised_through(amount=D("5"), moment=at(1, 3), **yen) == D("3")  # 2.5 half up


def test_a_fee_written_after_its_month_closed_moves_the_first_open_month(time_machine):
    """A renewal released late, a back-dated plan start: the fee belongs to a closed month.
    The closed month keeps its figures; the first open month takes the fee, saying so."""
    earlier = fee("3.00", at(1, 1), at(2, 1))
    time_machine.move_to(at(2, 2), tick=False)
    close_month(month=JAN, acting_user=UserFactory())
    frozen = fees(JAN)
    late = fee("10.00", at(1, 20), at(2, 20))
    post_revenue()
    assert fees(JAN) == frozen == (D("3.00"), D("3.00"), D("0.00"))
    assert lines(late) == [
        (FEB, JAN, "billed", D("10.00")),
        (FEB, JAN, "recognised", D("3.87")),
        (FEB, FEB, "recognised", D("6.13")),
    ]
    assert fees(FEB) == (D("10.00"), D("10.00"), D("0.00"))
    assert lines(earlier)[0] == (JAN, JAN, "billed", D("3.00"))
    assert verify_revenue() == []


def fee_plan():
    """30.00 a month: 1,000 credits valued 20.00 and a platform fee valued 10.00."""
    plan = PlanFactory(billing_interval="month", price=D("30.00"), platform_fee_value=D("10"))
    PlanAllowanceFactory(plan=plan, credit_type=CreditTypeFactory(), credits_per_period=D(1000),
                         standalone_value=D("20.00"))  # fmt: skip
    return plan


def test_a_plan_change_cuts_the_period_and_recognises_the_rest_of_its_fee_at_once(time_machine):
    account, plan = AccountFactory(), fee_plan()
    time_machine.move_to(at(1, 20), tick=False)
    put_account_on_plan(account=account, plan=plan)  # period January 20 to February 20
    post_revenue()
    assert fees(JAN) == (D("10.00"), D("3.87"), D("6.13"))
    time_machine.move_to(at(2, 5), tick=False)
    put_account_on_plan(account=account, plan=PlanFactory(price=D("0")))  # leaves it on Feb 5
    assert post_revenue().fees_posted == 1
    first = RatableFee.objects.get(plan=plan)
    assert first.cut_at == at(2, 5)
    assert fees(FEB) == (D("0"), D("6.13"), D("0.00"))  # nothing left to recognise later
    assert fees(MAR) == (0, 0, 0)
    assert verify_revenue() == []


def test_a_cut_found_after_its_month_closed_corrects_the_first_open_month(time_machine):
    """A fee for January 20 to March 20, cut on January 31 but posted after January closed:
    January stays as closed; February takes what the cut recognised for January."""
    found = fee("10.00", at(1, 20), at(3, 20))
    post_revenue()
    time_machine.move_to(at(2, 1, 1), tick=False)
    close_month(month=JAN, acting_user=UserFactory())
    jan = fees(JAN)
    RatableFee.objects.filter(pk=found.pk).update(cut_at=at(1, 31), needs_posting=True)
    post_revenue()
    assert fees(JAN) == jan
    assert lines(found) == sorted([
        (JAN, JAN, "billed", D("10.00")),
        (JAN, JAN, "recognised", jan[1]),
        (FEB, JAN, "recognised", D("10.00") - jan[1]),  # the rest, at the cut, dated January
    ])  # fmt: skip
    assert fees(FEB) == (D("0"), D("10.00") - jan[1], D("0.00"))
    assert verify_revenue() == []


def test_sums_are_exact_on_every_database():
    """SQLite adds decimals as floats (0.10 + 0.20 = 0.30000000000000004): figures are
    brought back to the money's places, so a month's fees add up to the cent everywhere."""
    fee("0.10", at(3, 1), at(3, 2))
    fee("0.20", at(3, 1), at(3, 2))
    post_revenue()
    assert fees(MAR) == (D("0.30"), D("0.30"), D("0.00"))
    assert str(fees(MAR)[2]) == "0.00"
