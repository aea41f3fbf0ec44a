"""Finance closes a month: its figures freeze; a later correction lands in the first open
month and says which month it is dated in; reopening is its own, recorded act."""

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from apps.core.errors import InvalidInput
from apps.revenue.models import RevenueLine, RevenueMonth
from apps.revenue.posting import post_revenue
from apps.revenue.selectors import Figures, month_figures
from apps.revenue.services import close_month, reopen_month
from apps.revenue.verify import verify_revenue
from apps.usage.services import consume
from apps.wallets.services import grant_credits
from tests.factories import AccountFactory, CreditTypeFactory, FeatureFactory, UserFactory

pytestmark = pytest.mark.django_db
D = Decimal
JAN, FEB, MAR = date(2026, 1, 1), date(2026, 2, 1), date(2026, 3, 1)


def at(month, day, hour=12):
    return datetime(2026, month, day, hour, tzinfo=UTC)


@pytest.fixture
def pack(time_machine):
    """$10 for 1,000 credits bought on January 10, 100 used on January 20."""
    credit_type = CreditTypeFactory()
    FeatureFactory(code="api_call", credit_type=credit_type, credits_per_unit=D(1))
    account = AccountFactory()
    time_machine.move_to(at(1, 10), tick=False)
    grant_credits(account=account, credit_type=credit_type, amount=D(1000), source="purchase",
                  basis_amount=D("10.00"))  # fmt: skip
    time_machine.move_to(at(1, 20), tick=False)
    consume(account=account, feature="api_call", quantity=D(100))
    return account


def test_closing_a_month_freezes_its_figures_with_who_and_when(pack, time_machine):
    finance = UserFactory()
    time_machine.move_to(at(2, 3), tick=False)
    record = close_month(month=JAN, acting_user=finance)
    assert (record.closed, record.closed_by, record.closed_at) == (True, finance, at(2, 3))
    frozen = Figures.from_json(record.figures["USD"])
    assert (frozen.billed, frozen.recognised, frozen.closing_deferred) == (
        D("10.00"), D("1.00"), D("9.00"),
    )  # fmt: skip
    assert record.history.latest().history_user == finance
    assert verify_revenue() == []


def test_a_correction_dated_in_a_closed_month_posts_to_the_first_open_month(pack, time_machine):
    time_machine.move_to(at(2, 3), tick=False)
    close_month(month=JAN, acting_user=UserFactory())
    time_machine.move_to(at(1, 31, 23), tick=False)  # an entry dated January commits late
    consume(account=pack, feature="api_call", quantity=D(50))
    time_machine.move_to(at(2, 4), tick=False)
    post_revenue()
    late = RevenueLine.objects.get(kind="consumed", dated_month=JAN, month=FEB)
    assert (late.credits, late.amount) == (D(50), D("0.50"))
    assert month_figures(month=JAN)[("USD",)].recognised == D("1.00")  # January is frozen
    assert month_figures(month=FEB)[("USD",)].recognised == D("0.50")
    assert verify_revenue() == []


def test_months_close_in_order_and_only_once_ended(pack, time_machine):
    time_machine.move_to(at(1, 25), tick=False)
    with pytest.raises(InvalidInput, match="not ended"):
        close_month(month=JAN, acting_user=UserFactory())
    time_machine.move_to(at(2, 20), tick=False)
    consume(account=pack, feature="api_call", quantity=D(10))
    time_machine.move_to(at(3, 2), tick=False)
    with pytest.raises(InvalidInput, match="Close January 2026 first"):
        close_month(month=FEB, acting_user=UserFactory())
    close_month(month=JAN, acting_user=UserFactory())
    close_month(month=FEB, acting_user=UserFactory())
    with pytest.raises(InvalidInput, match="already closed"):
        close_month(month=FEB, acting_user=UserFactory())


def test_reopening_takes_the_latest_closed_month_and_a_reason(pack, time_machine):
    time_machine.move_to(at(3, 2), tick=False)
    close_month(month=JAN, acting_user=UserFactory())
    close_month(month=FEB, acting_user=UserFactory())
    controller = UserFactory()
    with pytest.raises(InvalidInput, match="later closed months first"):
        reopen_month(month=JAN, acting_user=controller, reason="late invoice")
    with pytest.raises(InvalidInput, match="why"):
        reopen_month(month=FEB, acting_user=controller, reason=" ")
    record = reopen_month(month=FEB, acting_user=controller, reason="late invoice")
    assert (record.closed, record.reopened_by, record.figures) == (False, controller, {})
    latest = record.history.latest()
    assert (latest.history_user, latest.history_change_reason) == (controller, "late invoice")
    assert RevenueMonth.objects.get(month=JAN).closed
    assert verify_revenue() == []


@pytest.mark.revenue_tampered
def test_verify_finds_a_closed_month_whose_lines_changed(pack, time_machine):
    time_machine.move_to(at(2, 3), tick=False)
    close_month(month=JAN, acting_user=UserFactory())
    RevenueLine.objects.filter(kind="consumed").update(credits=D(99), amount=D("0.99"))
    problems = verify_revenue()
    assert any("frozen figures differ" in p for p in problems), problems
    assert any("consumed: ledger says 100" in p and "revenue lines 99" in p for p in problems)
