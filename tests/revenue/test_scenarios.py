"""Revenue to the cent through whole lives of grants: the figures of every month, by hand."""

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from apps.catalog.models import Feature
from apps.periods.services import put_account_on_plan, renew_due_subscriptions
from apps.revenue.posting import post_revenue
from apps.revenue.selectors import month_figures, series
from apps.revenue.verify import verify_revenue
from apps.usage.services import consume
from apps.wallets.models import CreditGrant
from apps.wallets.services import claw_back, expire_grants, grant_credits
from tests.factories import (
    AccountFactory,
    CreditTypeFactory,
    FeatureFactory,
    PlanAllowanceFactory,
    PlanFactory,
    PlanFeatureFactory,
)

pytestmark = pytest.mark.django_db
D = Decimal


def at(month, day, hour=12):
    return datetime(2026, month, day, hour, tzinfo=UTC)


def figures(month, currency="USD", **kwargs):
    found = month_figures(month=date(2026, month, 1), currency=currency, **kwargs)
    return found[(currency,)] if not kwargs else found


def money(f):
    """The money columns of a month, as the report shows them."""
    return {
        "opening": f.opening_deferred, "billed": f.billed, "recognised": f.recognised,
        "breakage": f.breakage, "refunded": f.refunded, "closing": f.closing_deferred,
    }  # fmt: skip


def assert_clean():
    post_revenue()
    assert verify_revenue() == []


def test_a_pack_used_refunded_and_expired_gives_exact_cents_every_month(time_machine):
    """$10 for 1,000 credits: 250 used in January; a $3 refund (300 credits) and 350 used in
    February; the last 100 expire on March 1."""
    credit_type = CreditTypeFactory()
    FeatureFactory(code="api_call", credit_type=credit_type, credits_per_unit=D(1))
    account = AccountFactory()
    time_machine.move_to(at(1, 10), tick=False)
    pack, _ = grant_credits(
        account=account, credit_type=credit_type, amount=D(1000), source="purchase",
        unit_price=D("0.01"), basis_amount=D("10.00"), expires_at=at(3, 1, 0),
    )  # fmt: skip
    post_revenue()  # posting as it goes, a run at a time, gives what one run at the end would
    time_machine.move_to(at(1, 20), tick=False)
    consume(account=account, feature="api_call", quantity=D(250))
    post_revenue()
    time_machine.move_to(at(2, 5), tick=False)
    assert claw_back(grant=pack, credits=D(300), reason="Stripe refund: 3.00 USD") == D(300)
    time_machine.move_to(at(2, 15), tick=False)
    consume(account=account, feature="api_call", quantity=D(350))
    time_machine.move_to(at(3, 1, 1), tick=False)
    expire_grants()
    assert_clean()

    assert money(figures(1)) == {
        "opening": 0, "billed": D("10.00"), "recognised": D("2.50"), "breakage": 0,
        "refunded": 0, "closing": D("7.50"),
    }  # fmt: skip
    assert money(figures(2)) == {
        "opening": D("7.50"), "billed": 0, "recognised": D("3.50"), "breakage": 0,
        "refunded": D("3.00"), "closing": D("1.00"),
    }  # fmt: skip
    assert money(figures(3)) == {
        "opening": D("1.00"), "billed": 0, "recognised": 0, "breakage": D("1.00"),
        "refunded": 0, "closing": 0,
    }  # fmt: skip
    march = figures(3)
    assert (march.credits_expired, march.opening_credits, march.closing_credits) == (
        D(100), D(100), 0,
    )  # fmt: skip


def test_rounding_is_allocated_so_a_grant_releases_exactly_what_was_paid(time_machine):
    """$10 for 3 credits, one used a month: 3.33, 3.34, 3.33 — never 3 × 3.33 = 9.99."""
    credit_type = CreditTypeFactory()
    FeatureFactory(code="api_call", credit_type=credit_type, credits_per_unit=D(1))
    account = AccountFactory()
    time_machine.move_to(at(1, 2), tick=False)
    grant_credits(account=account, credit_type=credit_type, amount=D(3), source="purchase",
                  basis_amount=D("10.00"))  # fmt: skip
    for month in (1, 2, 3):
        time_machine.move_to(at(month, 15), tick=False)
        consume(account=account, feature="api_call", quantity=D(1))
        post_revenue()
    assert [figures(m).recognised for m in (1, 2, 3)] == [D("3.33"), D("3.34"), D("3.33")]
    assert figures(3).closing_deferred == 0
    assert_clean()


def test_free_credits_are_counted_in_credits_never_as_revenue(time_machine):
    credit_type = CreditTypeFactory()
    FeatureFactory(code="api_call", credit_type=credit_type, credits_per_unit=D(1))
    account = AccountFactory()
    time_machine.move_to(at(1, 2), tick=False)
    grant_credits(account=account, credit_type=credit_type, amount=D(500), source="promo",
                  unit_price=D("0.05"))  # fmt: skip
    consume(account=account, feature="api_call", quantity=D(200))
    assert_clean()
    january = figures(1)
    assert (january.billed, january.recognised, january.closing_deferred) == (0, 0, 0)
    assert (january.credits_granted, january.credits_free, january.credits_used) == (
        D(500), D(500), D(200),
    )  # fmt: skip


def test_a_plan_with_two_credit_types_and_rollover_over_three_months(time_machine):
    """$30 a month for 1,000 `api` and 500 `gpu` credits (split by credits: $20 and $10);
    half of what is left of each rolls over for one period."""
    api, gpu = CreditTypeFactory(code="api"), CreditTypeFactory(code="gpu")
    FeatureFactory(code="api_call", credit_type=api, credits_per_unit=D(1))
    FeatureFactory(code="render", credit_type=gpu, credits_per_unit=D(1))
    plan = PlanFactory(billing_interval="month", price=D("30"), rollover_percent=D(50),
                       rollover_expires_after_periods=1)  # fmt: skip
    PlanAllowanceFactory(plan=plan, credit_type=api, credits_per_period=D(1000))
    PlanAllowanceFactory(plan=plan, credit_type=gpu, credits_per_period=D(500))
    for feature in Feature.objects.all():
        PlanFeatureFactory(plan=plan, feature=feature)
    account = AccountFactory()
    time_machine.move_to(at(1, 1, 0), tick=False)
    put_account_on_plan(account=account, plan=plan)
    bases = sorted(
        (g.wallet.credit_type.code, g.basis_amount, g.plan_id)
        for g in CreditGrant.objects.filter(account=account)
    )
    assert bases == [("api", D("20.00"), plan.pk), ("gpu", D("10.00"), plan.pk)]

    time_machine.move_to(at(1, 20), tick=False)
    consume(account=account, feature="api_call", quantity=D(600))  # 400 left: 200 roll over
    consume(account=account, feature="render", quantity=D(100))
    for month in (2, 3, 4):
        time_machine.move_to(at(month, 1, 0), tick=False)
        renew_due_subscriptions(now=at(month, 1, 0))
        if month == 2:
            time_machine.move_to(at(2, 10), tick=False)
            consume(account=account, feature="api_call", quantity=D(1100))  # 200 rolled + 900
    assert_clean()

    january = figures(1)
    assert money(january) == {
        "opening": 0, "billed": D("30.00"), "recognised": D("14.00"), "breakage": 0,
        "refunded": 0, "closing": D("16.00"),
    }  # fmt: skip
    february = figures(2)
    # Feb 1: api's 400 left: 200 expire (4.00), 200 roll over carrying 4.00; gpu's 400
    # left: 200 expire (4.00), 200 roll over (4.00); the new period bills 30.00. Feb 10:
    # 1,100 api credits: the 200 rolled (4.00), then 900 of February's (18.00).
    assert money(february) == {
        "opening": D("16.00"), "billed": D("30.00"), "recognised": D("22.00"),
        "breakage": D("8.00"), "refunded": 0, "closing": D("16.00"),
    }  # fmt: skip
    assert (february.rolled_over, february.rolled_in) == (D("8.00"), D("8.00"))
    by_type = figures(2, dimension="credit_type")
    assert by_type[("USD", api.pk)].recognised == D("22.00")
    assert by_type[("USD", gpu.pk)].breakage == D("4.00")
    # March 1: February's api has 100 left (50 expire: 1.00, 50 roll: 1.00); February's gpu
    # 500 (250 expire: 5.00, 250 roll); January's rolled gpu (200, 4.00) expires unused.
    march = figures(3)
    assert (march.opening_deferred, march.breakage, march.billed) == (
        D("16.00"), D("10.00"), D("30.00"),
    )  # fmt: skip
    # Every month of the span satisfies the identity (verify_revenue checked it too).
    for month_figures_ in series(first=date(2026, 1, 1), last=date(2026, 4, 1)).values():
        for f in month_figures_.values():
            assert f.opening_deferred + f.billed - f.refunded == (
                f.recognised + f.breakage + f.closing_deferred
            )
