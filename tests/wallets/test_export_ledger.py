"""`manage.py export_ledger`: the ledger as CSV or JSON Lines, by day range, account and
credit type, to a file or stdout; bad input is refused with the reason."""

import csv
import io
import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command

from apps.wallets.exports import LEDGER_COLUMNS
from apps.wallets.models import LedgerEntry
from tests.factories import CreditTypeFactory
from tests.ledger import give, priced_account, wallet_of

pytestmark = pytest.mark.django_db


def at(day, hour=12):
    return datetime(2026, 11, day, hour, tzinfo=UTC)


@pytest.fixture
def entries():
    """Entries of two accounts and two credit types on 2026-11-09 to 11-12 (UTC)."""
    acme, _ = priced_account(external_id="acme")
    other, _ = priced_account(external_id="other", feature_code="other_call")
    give(acme, 1)
    give(other, 1)
    gold = CreditTypeFactory(code="gold")
    give(acme, 1, credit_type=gold)
    made = {}
    for account, kind, day, hour in [(acme, None, 9, 23), (acme, None, 10, 0), (acme, gold, 11, 12),
                                     (other, None, 11, 23), (acme, None, 12, 0)]:  # fmt: skip
        wallet = wallet_of(account, kind)
        made[(account.external_id, day)] = LedgerEntry.objects.create(
            account=account, wallet=wallet, kind="adjust", amount=Decimal("-0.5"),
            balance_after=Decimal("0.5"), reason="=cmd", created_at=at(day, hour),
        )  # fmt: skip
    return made


def export(*args):
    out = io.StringIO()
    call_command("export_ledger", *args, stdout=out)
    return out.getvalue()


def ids(text):
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert rows[0] == [column.name for column in LEDGER_COLUMNS]
    return {int(row[0]) for row in rows[1:]}


def test_the_day_range_includes_both_days_in_utc(entries):
    got = ids(export("--from", "2026-11-10", "--to", "2026-11-11"))
    assert got == {entries[("acme", 10)].pk, entries[("acme", 11)].pk, entries[("other", 11)].pk}


def test_account_and_credit_type_narrow_the_export(entries):
    got = ids(export("--to", "2026-11-30", "--account", "acme", "--credit-type", "gold"))
    assert got == {entries[("acme", 11)].pk}
    assert entries[("other", 11)].pk not in ids(export("--account", "acme"))


def test_json_lines_to_a_file_are_exact(entries, tmp_path):
    target = tmp_path / "ledger.jsonl"
    assert (
        export(
            "--from",
            "2026-11-12",
            "--to",
            "2026-11-12",
            "--format",
            "json",
            "--output",
            str(target),
        )
        == ""
    )
    [row] = [json.loads(line) for line in target.read_text().splitlines()]
    entry = entries[("acme", 12)]
    assert row["id"] == entry.pk and row["account"] == "acme"
    assert (row["amount"], row["balance_after"], row["held_change"]) == ("-0.5", "0.5", "0")
    assert row["created_at"] == "2026-11-12T00:00:00Z" and row["reason"] == "=cmd"


def test_csv_cells_are_safe_for_spreadsheets(entries):
    rows = list(
        csv.DictReader(
            io.StringIO(export("--from", "2026-11-12", "--to", "2026-11-12"), newline="")
        )
    )
    assert [(row["reason"], row["amount"]) for row in rows] == [("'=cmd", "-0.5")]


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (["--from", "2026-13-01"], "'2026-13-01' is not a date: use YYYY-MM-DD."),
        (["--to", "1.12.2026"], "'1.12.2026' is not a date: use YYYY-MM-DD."),
        (["--from", "20261201"], "'20261201' is not a date: use YYYY-MM-DD."),
        (
            ["--from", "2026-12-02", "--to", "2026-12-01"],
            "--from 2026-12-02 is after --to 2026-12-01.",
        ),
        (["--account", "nobody"], "No account has external id 'nobody'."),
        (["--credit-type", "nothing"], "No credit type has code 'nothing'."),
        (
            ["--output", "/no/such/dir/x.csv"],
            "Cannot write /no/such/dir/x.csv: No such file or directory.",
        ),
    ],
)
def test_bad_input_is_refused_with_the_reason(args, reason):
    with pytest.raises(CommandError) as error:
        export(*args)
    assert str(error.value) == reason


def test_an_unknown_format_is_refused_by_the_parser():
    with pytest.raises(CommandError, match="invalid choice: 'xlsx'"):
        export("--format", "xlsx")
