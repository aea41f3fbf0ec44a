"""`revenue_report` and `verify_revenue` from the command line."""

import csv
import io
import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from apps.revenue.models import RevenueLine
from apps.usage.services import consume
from apps.wallets.services import grant_credits
from tests.factories import AccountFactory, CreditTypeFactory, FeatureFactory

pytestmark = pytest.mark.django_db
D = Decimal


@pytest.fixture
def january(time_machine):
    """$10 for 1,000 credits on January 10; 250 used on January 20 and 100 on February 2."""
    credit_type = CreditTypeFactory(code="api")
    FeatureFactory(code="api_call", credit_type=credit_type, credits_per_unit=D(1))
    account = AccountFactory()
    time_machine.move_to(datetime(2026, 1, 10, tzinfo=UTC), tick=False)
    grant_credits(account=account, credit_type=credit_type, amount=D(1000), source="purchase",
                  basis_amount=D("10.00"))  # fmt: skip
    time_machine.move_to(datetime(2026, 1, 20, tzinfo=UTC), tick=False)
    consume(account=account, feature="api_call", quantity=D(250))
    time_machine.move_to(datetime(2026, 2, 2, tzinfo=UTC), tick=False)
    consume(account=account, feature="api_call", quantity=D(100))
    return account


def run(*args):
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def test_the_report_as_csv_has_a_row_per_month_with_exact_money(january):
    rows = list(csv.DictReader(io.StringIO(run("revenue_report", "--from", "2026-01",
                                               "--to", "2026-02", "--format", "csv"))))  # fmt: skip
    assert [(r["month"], r["opening_deferred"], r["billed"], r["recognised"],
             r["closing_deferred"], r["credits_used"]) for r in rows] == [
        ("2026-01", "0.00", "10.00", "2.50", "7.50", "250"),
        ("2026-02", "7.50", "0.00", "1.00", "6.50", "100"),
    ]  # fmt: skip


def test_the_report_by_credit_type_as_json_lines(january):
    lines = run("revenue_report", "--from", "2026-02", "--to", "2026-02", "--by",
                "credit_type", "--format", "json", "--currency", "usd").splitlines()  # fmt: skip
    [row] = [json.loads(line) for line in lines]
    assert (row["credit_type"], row["currency"], row["recognised"]) == ("api", "USD", "1.00")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--from", "2026-13", "--to", "2026-12"], "not a month"),
        (["--from", "2026-02", "--to", "2026-01"], "before --from"),
        (["--from", "2026-01", "--to", "2026-01", "--currency", "dollars"], "not a currency"),
    ],
)
def test_bad_input_is_refused_with_the_reason(args, message):
    with pytest.raises(CommandError, match=message):
        run("revenue_report", *args)


@pytest.mark.revenue_tampered
def test_verify_revenue_passes_then_fails_on_a_tampered_line(january):
    assert "agrees" in run("verify_revenue")
    RevenueLine.objects.filter(kind="consumed").update(amount=D("9.99"))
    with pytest.raises(CommandError, match="difference"):
        run("verify_revenue", "--no-post")
