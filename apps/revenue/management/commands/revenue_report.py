import sys
from datetime import date

from django.core.management.base import BaseCommand, CommandError

from apps.core.exports import exact_values
from apps.revenue.exports import schedule_chunks, schedule_columns, schedule_rows
from apps.revenue.posting import post_revenue
from apps.revenue.selectors import DIMENSIONS

FORMATS = {"csv": "csv", "json": "jsonl"}  # the same files as the revenue pages' exports


def month_arg(text):
    try:
        year, month = (int(part) for part in text.split("-"))
        return date(year, month, 1)
    except ValueError:
        raise CommandError(f"{text!r} is not a month: use YYYY-MM, e.g. 2026-01.") from None


class Command(BaseCommand):
    help = (
        "The revenue schedule: per month and currency, opening deferred revenue, billed, "
        "recognised, breakage, refunds, rollovers, closing deferred revenue and the credits "
        "behind them (docs/revenue.md). Posts the ledger first."
    )

    def add_arguments(self, parser):
        parser.add_argument("--from", dest="first", required=True, help="First month, YYYY-MM.")
        parser.add_argument("--to", dest="last", required=True, help="Last month, YYYY-MM.")
        parser.add_argument("--currency", help="One currency, e.g. USD (default: all).")
        parser.add_argument(
            "--by",
            choices=[d for d in DIMENSIONS if d],
            help="Break each month down by credit type, plan or account.",
        )
        parser.add_argument(
            "--format",
            choices=["csv", "json", "table"],
            default="table",
            help="csv, json (one object per line) or table (default).",
        )
        parser.add_argument("--no-post", action="store_true",
                            help="Report what is posted without posting first.")  # fmt: skip

    def handle(self, *args, first, last, currency, by, format, no_post, **options):
        first, last = month_arg(first), month_arg(last)
        if last < first:
            raise CommandError("--to is before --from.")
        if currency and (len(currency) != 3 or not currency.isalpha()):
            raise CommandError(f"{currency!r} is not a currency code: use e.g. USD.")
        if not no_post:
            post_revenue()
        currency = currency and currency.upper()
        out = self.stdout
        if format in FORMATS:
            for chunk in schedule_chunks(first=first, last=last, currency=currency, by=by,
                                         fmt=FORMATS[format]):  # fmt: skip
                out.write(chunk.decode(), ending="")
        else:
            columns = schedule_columns(by=by)
            header = [column.name for column in columns]
            rows = [
                ["" if value is None else str(value)
                 for value in exact_values(row, columns=columns)]
                for month in schedule_rows(first=first, last=last, currency=currency, by=by)
                for row in month
            ]  # fmt: skip
            widths = [
                max(len(str(x)) for x in column) for column in zip(header, *rows, strict=True)
            ]
            for row in [header, *rows]:
                out.write("  ".join(str(x).rjust(w) for x, w in zip(row, widths, strict=True)))
        if out is sys.stdout:
            out.flush()
