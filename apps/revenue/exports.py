"""The revenue schedule as a file, written once: `manage.py revenue_report --format csv|json`
and the *Export CSV* / *Export JSON Lines* links of the revenue pages both write these rows
(docs/revenue.md, docs/exports.md).

One row per month and currency (and credit type, plan or account when broken down): the
month's money figures in plain decimals with two places, then the credits behind them, exact.
The figures come from the posted revenue lines (`series`): a few rows per month whatever the
size of the ledger, streamed one month per chunk."""

from dataclasses import fields

from apps.accounts.models import Account
from apps.catalog.models import CreditType, Plan
from apps.core.exports import DECIMAL, MONEY, Column, write_chunks

from .selectors import Figures, series

MONEY_COLUMNS = [f.name for f in fields(Figures) if "credits" not in f.name]
CREDIT_COLUMNS = [f.name for f in fields(Figures) if "credits" in f.name]
# A breakdown's column: each row names its credit type, plan or account by this field.
LABELS = {"credit_type": (CreditType, "code"), "plan": (Plan, "code"),
          "account": (Account, "external_id")}  # fmt: skip


def schedule_columns(*, by=None):
    return [
        Column("month"),
        Column("currency"),
        *([Column(by)] if by else []),
        *(Column(name, kind=MONEY) for name in MONEY_COLUMNS),
        *(Column(name, kind=DECIMAL) for name in CREDIT_COLUMNS),
    ]


def _labels(by, ids):
    model, name = LABELS[by]
    return dict(model.objects.filter(pk__in=ids).values_list("pk", name))


def schedule_rows(*, first, last, currency=None, by=None):
    """The schedule from month `first` to `last` (dates, first of the month), one list of
    rows per month, each row the values of `schedule_columns(by=by)`."""
    months = series(first=first, last=last, currency=currency, dimension=by)
    labels = _labels(by, {key[1] for found in months.values() for key in found}) if by else {}
    for month, found in months.items():
        yield [
            (
                f"{month:%Y-%m}", key[0], *([labels.get(key[1], key[1])] if by else []),
                *(getattr(figures, name) for name in MONEY_COLUMNS),
                *(getattr(figures, name) for name in CREDIT_COLUMNS),
            )
            for key, figures in sorted(found.items(), key=lambda item: str(item[0]))
        ]  # fmt: skip


def schedule_chunks(*, first, last, currency=None, by=None, fmt):
    """The schedule as a CSV or JSON Lines file ("csv" or "jsonl"), in UTF-8 chunks."""
    rows = schedule_rows(first=first, last=last, currency=currency, by=by)
    return write_chunks(rows, columns=schedule_columns(by=by), fmt=fmt)
