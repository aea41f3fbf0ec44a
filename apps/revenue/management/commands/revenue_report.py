import csv
import json
import sys
from dataclasses import fields
from datetime import date

from django.core.management.base import BaseCommand, CommandError

from apps.accounts.models import Account
from apps.catalog.models import CreditType, Plan
from apps.core.decimals import format_decimal, format_money
from apps.revenue.posting import post_revenue
from apps.revenue.selectors import DIMENSIONS, Figures, series

MONEY_COLUMNS = [
    f.name for f in fields(Figures)
    if f.name.endswith("deferred") or f.name in ("billed", "recognised", "breakage", "refunded",
                                                 "rolled_over", "rolled_in")
]  # fmt: skip
CREDIT_COLUMNS = [f.name for f in fields(Figures) if "credits" in f.name]
LABELS = {"credit_type": (CreditType, "code"), "plan": (Plan, "code"),
          "account": (Account, "external_id")}  # fmt: skip


def labels_of(dimension, ids):
    model, name = LABELS[dimension]
    return dict(model.objects.filter(pk__in=ids).values_list("pk", name))


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
        months = series(first=first, last=last, currency=currency and currency.upper(),
                        dimension=by)  # fmt: skip
        labels = labels_of(by, {k[1] for f in months.values() for k in f}) if by else {}
        header = ["month", "currency", *([by] if by else []), *MONEY_COLUMNS, *CREDIT_COLUMNS]
        rows = (
            [f"{month:%Y-%m}", key[0], *([labels.get(key[1], key[1])] if by else []),
             *(format_money(getattr(f, c)) for c in MONEY_COLUMNS),
             *(format_decimal(getattr(f, c)) for c in CREDIT_COLUMNS)]
            for month, figures in months.items()
            for key, f in sorted(figures.items(), key=lambda item: str(item[0]))
        )  # fmt: skip
        out = self.stdout
        if format == "csv":
            writer = csv.writer(out, lineterminator="\n")
            writer.writerow(header)
            writer.writerows(rows)
        elif format == "json":
            for row in rows:
                out.write(json.dumps(dict(zip(header, row, strict=True))))
        else:
            rows = list(rows)
            widths = [
                max(len(str(x)) for x in column) for column in zip(header, *rows, strict=True)
            ]
            for row in [header, *rows]:
                out.write("  ".join(str(x).rjust(w) for x, w in zip(row, widths, strict=True)))
        if out is sys.stdout:
            out.flush()
