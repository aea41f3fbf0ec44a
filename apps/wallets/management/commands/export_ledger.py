import re
import sys
from datetime import UTC, date, datetime, time, timedelta

from django.core.management.base import BaseCommand, CommandError

from apps.accounts.models import Account
from apps.catalog.models import CreditType
from apps.core.exports import export_chunks
from apps.wallets.exports import LEDGER_COLUMNS
from apps.wallets.selectors import ledger_entries

# `json` is accepted for JSON Lines too: one JSON object per line, never one large array.
FORMATS = {"csv": "csv", "jsonl": "jsonl", "json": "jsonl"}


def day(value):
    try:
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            raise ValueError
        return date.fromisoformat(value)
    except ValueError:
        raise CommandError(f"{value!r} is not a date: use YYYY-MM-DD.") from None


def start_of(value):
    return datetime.combine(value, time.min, tzinfo=UTC)


class Command(BaseCommand):
    help = (
        "Stream the ledger as CSV or JSON Lines in constant memory, oldest entry first "
        "(docs/exports.md). Days are UTC; --from and --to both include their day."
    )

    def add_arguments(self, parser):
        parser.add_argument("--from", dest="date_from", help="First day, YYYY-MM-DD (UTC).")
        parser.add_argument("--to", dest="date_to", help="Last day, YYYY-MM-DD (UTC), included.")
        parser.add_argument("--account", help="Only this account (external id).")
        parser.add_argument("--credit-type", help="Only this credit type (code).")
        parser.add_argument(
            "--format",
            choices=list(FORMATS),
            default="csv",
            help="csv (default) or jsonl; json is the same as jsonl (JSON Lines).",
        )
        parser.add_argument("--output", default="-", help="File to write, or - for stdout.")

    def handle(self, *args, date_from, date_to, account, credit_type, format, output, **options):
        first = day(date_from) if date_from else None
        last = day(date_to) if date_to else None
        if first and last and first > last:
            raise CommandError(f"--from {first} is after --to {last}.")
        scope = None
        if account:
            scope = Account.objects.filter(external_id=account).first()
            if scope is None:
                raise CommandError(f"No account has external id {account!r}.")
        kind = None
        if credit_type:
            kind = CreditType.objects.filter(code=credit_type).first()
            if kind is None:
                raise CommandError(f"No credit type has code {credit_type!r}.")
        entries = ledger_entries(
            created_from=start_of(first) if first else None,
            created_before=start_of(last + timedelta(days=1)) if last else None,
            account=scope,
            credit_type=kind,
        )
        chunks = export_chunks(entries, columns=LEDGER_COLUMNS, fmt=FORMATS[format])
        if output == "-":
            self._write(options.get("stdout") or sys.stdout, chunks)
            return
        try:
            with open(output, "wb") as file:
                for chunk in chunks:
                    file.write(chunk)
        except OSError as error:
            raise CommandError(f"Cannot write {output}: {error.strerror}.") from None

    def _write(self, stream, chunks):
        binary = getattr(stream, "buffer", None)
        for chunk in chunks:
            if binary is not None:
                binary.write(chunk)
            else:
                stream.write(chunk.decode())
        (binary or stream).flush()
