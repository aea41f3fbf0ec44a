"""The streaming exporter (apps/core/exports.py) and the admin's export links: exact values,
CSV that a spreadsheet will not run, every row across batches, memory that does not grow
with the rows, and the filtered list exported as it is shown."""

import csv
import io
import json
import tracemalloc
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.contrib import admin
from django.contrib.auth.models import Permission
from django.db import connection
from django.urls import reverse

from apps.billing.models import OverageCharge, Purchase
from apps.core.exports import DATETIME, DECIMAL, ID, MONEY, Column, csv_safe, export_chunks
from apps.usage.models import UsageEvent
from apps.wallets.exports import LEDGER_COLUMNS
from apps.wallets.models import LedgerEntry
from tests.factories import UserFactory, admin_samples
from tests.ledger import give, priced_account, wallet_of

pytestmark = pytest.mark.django_db

D = Decimal
WHEN = datetime(2026, 11, 30, 23, 59, 58, 123456, tzinfo=UTC)
EXPORTED = [LedgerEntry, UsageEvent, Purchase, OverageCharge]


def seed_ledger(count, *, reason="", account=None):
    """`count` ledger entries of one wallet, written in one statement (the ledger is
    append-only: inserting is all a test may do)."""
    if account is None:
        n = LedgerEntry.objects.count()
        account, _ = priced_account(external_id=f"acct-{n}", feature_code=f"call_{n}")
        give(account, 1)
    wallet = wallet_of(account)
    LedgerEntry.objects.bulk_create(
        [
            LedgerEntry(
                account=account,
                wallet=wallet,
                kind="adjust",
                amount=D("-0.000001"),
                balance_after=D(i),
                reason=reason,
                created_at=WHEN,
            )  # fmt: skip
            for i in range(count)
        ],
        batch_size=5000,
    )
    return account


def csv_rows(chunks):
    return list(csv.reader(io.StringIO(b"".join(chunks).decode(), newline="")))


def jsonl_rows(chunks):
    return [json.loads(line) for line in b"".join(chunks).decode().splitlines()]


def test_csv_has_a_header_and_exact_plain_values():
    account = seed_ledger(1, reason="ticket 7")
    rows = csv_rows(export_chunks(LedgerEntry.objects.filter(kind="adjust"),
                                  columns=LEDGER_COLUMNS, fmt="csv"))  # fmt: skip
    assert rows[0] == [column.name for column in LEDGER_COLUMNS]
    row = dict(zip(rows[0], rows[1], strict=True))
    assert row["account"] == account.external_id
    assert row["created_at"] == "2026-11-30T23:59:58.123456Z"
    assert (row["amount"], row["balance_after"], row["held_change"]) == ("-0.000001", "0", "0")
    assert (row["grant_id"], row["acting_user"], row["reason"]) == ("", "", "ticket 7")
    assert row["kind"] == "adjust" and int(row["id"]) > 0


def test_json_lines_keep_decimals_and_money_as_exact_strings_and_ids_as_numbers():
    columns = [Column("id", kind=ID), Column("amount", kind=DECIMAL),
               Column("balance_after", kind=MONEY), Column("created_at", kind=DATETIME),
               Column("grant_id", kind=ID), Column("reason")]  # fmt: skip
    account, _ = priced_account(external_id="exact")
    # SQLite keeps decimals as floats (15 significant digits); PostgreSQL keeps all 23.
    amount = "12345678901234567.123456" if connection.vendor == "postgresql" else "123456789.123456"
    grant = give(account, amount)
    entry = LedgerEntry.objects.get(grant=grant)
    [row] = jsonl_rows(export_chunks(LedgerEntry.objects.filter(pk=entry.pk),
                                     columns=columns, fmt="jsonl"))  # fmt: skip
    assert row == {
        "id": entry.pk,
        "amount": amount,
        "balance_after": amount[:-4],  # as money: its two places
        "created_at": entry.created_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "grant_id": grant.pk,
        "reason": "",
    }
    assert list(row) == [column.name for column in columns]


@pytest.mark.parametrize(
    ("text", "written"),
    [
        ('=HYPERLINK("http://x")', '\'=HYPERLINK("http://x")'),
        ("+1+1", "'+1+1"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tcmd", "'\tcmd"),
        ("'quoted", "''quoted"),  # so that dropping one leading apostrophe always gives it back
        ("refund 12", "refund 12"),
        ("a=b", "a=b"),
    ],
)
def test_a_text_cell_that_a_spreadsheet_would_run_gets_a_leading_apostrophe(text, written):
    assert csv_safe(text) == written
    seed_ledger(1, reason=text)
    rows = csv_rows(export_chunks(LedgerEntry.objects.filter(kind="adjust"),
                                  columns=LEDGER_COLUMNS, fmt="csv"))  # fmt: skip
    row = dict(zip(rows[0], rows[1], strict=True))
    assert row["reason"] == written
    assert row["amount"] == "-0.000001"  # numbers are never escaped
    [line] = jsonl_rows(export_chunks(LedgerEntry.objects.filter(kind="adjust"),
                                      columns=LEDGER_COLUMNS, fmt="jsonl"))  # fmt: skip
    assert line["reason"] == text  # JSON Lines are for programs: unescaped


def test_every_row_is_exported_once_in_id_order_across_batches():
    seed_ledger(7)
    entries = LedgerEntry.objects.filter(kind="adjust")
    expected = list(entries.order_by("pk").values_list("pk", flat=True))
    chunks = list(export_chunks(entries, columns=[Column("id", kind=ID)], fmt="csv",
                                batch_size=3))  # fmt: skip
    assert len(chunks) == 1 + 3  # the header, then batches of 3, 3 and 1
    assert [int(row[0]) for row in csv_rows(chunks)[1:]] == expected


def test_an_empty_list_is_a_header_only():
    rows = csv_rows(export_chunks(LedgerEntry.objects.none(), columns=LEDGER_COLUMNS, fmt="csv"))
    assert rows == [[column.name for column in LEDGER_COLUMNS]]
    assert b"".join(export_chunks(LedgerEntry.objects.all(), columns=LEDGER_COLUMNS,
                                  fmt="jsonl")) == b""  # fmt: skip


def test_an_unknown_format_is_refused():
    with pytest.raises(ValueError, match="xlsx"):
        next(export_chunks(LedgerEntry.objects.all(), columns=LEDGER_COLUMNS, fmt="xlsx"))


def peak_bytes(chunks):
    """Peak Python memory while the export is consumed chunk by chunk (and thrown away, as
    a streamed response does)."""
    tracemalloc.start()
    try:
        size = 0
        for chunk in chunks:
            size += len(chunk)
        return tracemalloc.get_traced_memory()[1], size
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_peak_memory_does_not_grow_with_the_number_of_rows(fmt):
    small, large = seed_ledger(2_000, reason="x" * 50), seed_ledger(20_000, reason="x" * 50)

    def export(account):
        entries = LedgerEntry.objects.filter(account=account, kind="adjust")
        return export_chunks(entries, columns=LEDGER_COLUMNS, fmt=fmt, batch_size=500)

    peak_small, size_small = peak_bytes(export(small))
    peak_large, size_large = peak_bytes(export(large))
    assert size_large > 9 * size_small  # ten times the rows were written...
    # ...with the same peak, give or take allocator noise (one batch is ~150 KB).
    assert peak_large < peak_small * 1.25 + 64 * 1024, (peak_small, peak_large)

    # The measure can see growth: holding the whole file peaks at more than its size.
    def whole_file():  # lazily: the join runs while memory is traced
        yield b"".join(export(large))

    peak_whole, _ = peak_bytes(whole_file())
    assert peak_whole > size_large > 2 * peak_large


# The admin's export links -------------------------------------------------------------


def export_url(model, fmt):
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_export_{fmt}")


@pytest.mark.parametrize("model", EXPORTED, ids=lambda m: m._meta.label)
def test_each_list_offers_both_exports_and_streams_its_rows(client, model):
    admin_samples()
    client.force_login(UserFactory(groups=["Finance"]))
    opts = model._meta
    page = client.get(reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"))
    html = page.content.decode()
    assert "Export CSV" in html and "Export JSON Lines" in html
    assert f'href="{export_url(model, "csv")}"' in html
    columns = admin.site._registry[model].export_columns
    response = client.get(export_url(model, "jsonl"))
    assert response.status_code == 200 and response.streaming
    assert response["Content-Type"] == "application/jsonl; charset=utf-8"
    slug = str(opts.verbose_name_plural).replace(" ", "-")
    assert response["Content-Disposition"].startswith(f'attachment; filename="{slug}-20')
    assert response["Content-Disposition"].endswith('.jsonl"')
    rows = jsonl_rows(response.streaming_content)
    assert len(rows) == model.objects.count() > 0
    assert all(list(row) == [column.name for column in columns] for row in rows)


def test_a_filtered_list_exports_only_its_rows_and_its_links_keep_the_filters(client):
    admin_samples()  # a grant, a consume and a reserve of account "acme"
    other, _ = priced_account(external_id="other", feature_code="other_call")
    give(other, 3)
    client.force_login(UserFactory(groups=["Finance"]))
    changelist = reverse("admin:wallets_ledgerentry_changelist")
    query = "kind__exact=grant&q=acme&p=2"
    html = client.get(f"{changelist}?kind__exact=grant&q=acme").content.decode()
    assert f'href="{export_url(LedgerEntry, "csv")}?kind__exact=grant&amp;q=acme"' in html
    response = client.get(f"{export_url(LedgerEntry, 'csv')}?{query}")
    rows = csv_rows(response.streaming_content)[1:]
    expected = LedgerEntry.objects.filter(kind="grant", account__external_id="acme")
    assert [int(row[0]) for row in rows] == sorted(expected.values_list("pk", flat=True))
    assert LedgerEntry.objects.exclude(pk__in=expected).exists()  # there was more to leave out
    assert {row[2] for row in rows} == {"acme"}


def test_a_bad_filter_goes_back_to_the_list_with_its_error(client):
    client.force_login(UserFactory(groups=["Finance"]))
    response = client.get(f"{export_url(LedgerEntry, 'csv')}?no_such_field=1")
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:wallets_ledgerentry_changelist") + "?e=1"


@pytest.mark.parametrize("model", EXPORTED, ids=lambda m: m._meta.label)
def test_who_cannot_view_a_list_cannot_export_it(client, model):
    admin_samples()
    client.force_login(UserFactory(groups=["Pricing"]))
    for fmt in ("csv", "jsonl"):
        assert client.get(export_url(model, fmt)).status_code == 403
    client.logout()
    response = client.get(export_url(model, "csv"))
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_viewing_a_list_is_not_enough_to_export_it(client):
    admin_samples()
    client.force_login(UserFactory(groups=["Support"]))  # Support reads the ledger...
    page = client.get(reverse("admin:wallets_ledgerentry_changelist"))
    assert page.status_code == 200 and "Export CSV" not in page.content.decode()
    for model in EXPORTED:  # ...and exports nothing
        assert client.get(export_url(model, "csv")).status_code == 403


def test_exporting_needs_the_view_permission_and_the_export_permission(rf):
    model_admin = admin.site._registry[LedgerEntry]
    request = rf.get("/")

    def may_export(user):
        request.user = type(user).objects.get(pk=user.pk)  # a fresh permission cache
        return model_admin.has_export_permission(request)

    support = UserFactory(groups=["Support"])
    assert (may_export(support), may_export(UserFactory(groups=["Finance"]))) == (False, True)
    export = Permission.objects.get(content_type__app_label="core", codename="export_data")
    support.user_permissions.add(export)
    assert may_export(support) is True
    exporter_only = UserFactory(groups=[])
    exporter_only.user_permissions.add(export)
    assert may_export(exporter_only) is False  # nothing to view, nothing to export
