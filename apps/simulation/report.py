"""A simulation's results as people and programs read them: the columns of a line (one
account, real beside draft), the totals, and the change per account. One definition for
the command's table, CSV and JSON and the admin's results page and CSV."""

from dataclasses import dataclass
from decimal import Decimal

from apps.core import humanize

from .figures import ZERO, Figures


@dataclass
class Change:
    """What the draft changes for one account (or in total)."""

    credits: Decimal  # draft credits charged - real
    percent: Decimal | None  # of the real credits charged; None when nothing was charged
    refused: int  # requests the draft refuses
    currency: str  # the currency its revenue is in ("" without revenue)
    revenue: Decimal  # draft revenue - real, in `currency`

    @classmethod
    def of(cls, real, draft):
        currencies = sorted({*real.revenue, *draft.revenue, *real.overage_billed,
                             *draft.overage_billed})  # fmt: skip
        currency = currencies[0] if currencies else ""
        credits = draft.charged - real.charged
        percent = (credits * 100 / real.charged).quantize(Decimal("0.1")) if real.charged else None
        return cls(
            credits=credits,
            percent=percent,
            refused=draft.refusals,
            currency=currency,
            revenue=draft.revenue.get(currency, ZERO) - real.revenue.get(currency, ZERO),
        )

    @property
    def changed(self):
        return bool(self.credits or self.refused or self.revenue)


def _money(amounts):
    """Amounts by currency as plain text: `12.00 USD; 3.00 EUR`, "" for none."""
    return "; ".join(f"{amount:.2f} {currency}" for currency, amount in sorted(amounts.items()))


def _moment(value):
    return value.isoformat() if value else ""


# (column, how it is read from (real, draft, change)): the CSV's header and the JSON's keys.
COLUMNS = [
    ("credits_real", lambda r, d, c: r.charged),
    ("credits_draft", lambda r, d, c: d.charged),
    ("credits_change", lambda r, d, c: c.credits),
    ("credits_change_percent", lambda r, d, c: c.percent),
    ("events", lambda r, d, c: r.events),
    ("refused_402_draft", lambda r, d, c: d.refused_funds),
    ("refused_403_draft", lambda r, d, c: d.refused_terms),
    ("refused_400_draft", lambda r, d, c: d.refused_input),
    ("first_refused_at_draft", lambda r, d, c: _moment(d.first_refused_at)),
    ("overage_credits_real", lambda r, d, c: r.overage),
    ("overage_credits_draft", lambda r, d, c: d.overage),
    ("overage_billed_real", lambda r, d, c: _money(r.overage_billed)),
    ("overage_billed_draft", lambda r, d, c: _money(d.overage_billed)),
    ("breakage_real", lambda r, d, c: r.breakage),
    ("breakage_draft", lambda r, d, c: d.breakage),
    ("revenue_real", lambda r, d, c: _money(r.revenue)),
    ("revenue_draft", lambda r, d, c: _money(d.revenue)),
    ("revenue_change", lambda r, d, c: f"{c.revenue:.2f}" if c.currency else ""),
    ("currency", lambda r, d, c: c.currency),
]
HEADER = ["account_id", "account"] + [name for name, _ in COLUMNS]


def row(account_id, account, real, draft):
    """One line's values in HEADER's order (plain: decimals exact, moments ISO 8601)."""
    change = Change.of(real, draft)
    return [account_id, account] + [read(real, draft, change) for _, read in COLUMNS]


# The totals as people read them: (label, how a Figures shows it).
TOTALS = [
    ("Credits charged", lambda f: humanize.credits(f.charged)),
    ("Usage events charged", lambda f: f"{f.events:,}"),
    ("Refused for credits (402)", lambda f: f"{f.refused_funds:,}"),
    ("Refused by the terms (403)", lambda f: f"{f.refused_terms:,}"),
    ("Refused: cost not exact (400)", lambda f: f"{f.refused_input:,}"),
    ("Overage", lambda f: humanize.credits(f.overage)),
    ("Overage billed", lambda f: _money_words(f.overage_billed)),
    ("Breakage (expired)", lambda f: humanize.credits(f.breakage)),
    ("Revenue recognised", lambda f: _money_words(f.revenue)),
]


def _money_words(amounts):
    return "; ".join(humanize.money(a, c) for c, a in sorted(amounts.items())) or "—"


def totals_table(real, draft):
    """[(label, real, draft)] for the totals."""
    return [(label, show(real), show(draft)) for label, show in TOTALS]


def sum_figures(pairs):
    """(real, draft) Figures summed over `pairs` of (real, draft), and how many changed."""
    real, draft, changed = Figures(), Figures(), 0
    for r, d in pairs:
        real.add(r)
        draft.add(d)
        changed += Change.of(r, d).changed
    return real, draft, changed
