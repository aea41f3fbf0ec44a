"""What a range did to one account, tallied the same way from the real ledger and from a
replay's unflushed entries: the comparison is only fair if one rule counts both sides."""

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from types import SimpleNamespace

from django.utils.dateparse import parse_datetime

from apps.revenue.models import RevenueLine
from apps.revenue.posting import LINE_KIND, amounts_of
from apps.wallets.models import CreditGrant, LedgerEntry

ZERO = Decimal(0)
Line = RevenueLine.Kind
# Recognised revenue: credits used (consumed, or paid back overage) and breakage. Granted
# credits are billed, not earned; clawed-back and rolled-over credits earn nothing.
RECOGNISED = (Line.SETTLED, Line.CONSUMED, Line.EXPIRED)


@dataclass
class Figures:
    events: int = 0  # usage events charged
    charged: Decimal = ZERO  # their credits
    refused_funds: int = 0  # refused for credits (402)
    refused_terms: int = 0  # refused by the terms: quota, feature not enabled (403)
    refused_input: int = 0  # the draft's cost not exact to 6 places for its quantity (400)
    first_refused_at: datetime | None = None
    overage: Decimal = ZERO  # credits drawn beyond the grants (debt)
    breakage: Decimal = ZERO  # credits expired
    overage_billed: dict = field(default_factory=lambda: defaultdict(Decimal))  # by currency
    revenue: dict = field(default_factory=lambda: defaultdict(Decimal))  # by currency

    @property
    def refusals(self):
        return self.refused_funds + self.refused_terms + self.refused_input

    def refused(self, *, status, at):
        if status == 402:
            self.refused_funds += 1
        elif status == 400:
            self.refused_input += 1
        else:
            self.refused_terms += 1
        if self.first_refused_at is None:
            self.first_refused_at = at

    @classmethod
    def from_dict(cls, values):
        """Back from `as_dict`, also as stored in JSON (decimals and moments as text)."""
        first = values.get("first_refused_at")
        return cls(
            events=values["events"],
            charged=Decimal(values["charged"]),
            refused_funds=values["refused_funds"],
            refused_terms=values["refused_terms"],
            refused_input=values["refused_input"],
            first_refused_at=parse_datetime(first) if isinstance(first, str) else first,
            overage=Decimal(values["overage"]),
            breakage=Decimal(values["breakage"]),
            overage_billed=_money(values["overage_billed"]),
            revenue=_money(values["revenue"]),
        )

    def add(self, other):
        """Add `other`'s figures to these (a run's totals)."""
        for name in ("events", "charged", "refused_funds", "refused_terms", "refused_input",
                     "overage", "breakage"):  # fmt: skip
            setattr(self, name, getattr(self, name) + getattr(other, name))
        if other.first_refused_at and (
            self.first_refused_at is None or other.first_refused_at < self.first_refused_at
        ):
            self.first_refused_at = other.first_refused_at
        for name in ("overage_billed", "revenue"):
            for currency, amount in getattr(other, name).items():
                getattr(self, name)[currency] += amount

    def as_dict(self):
        """Plain values (the run's stored lines, JSON output); money by currency, sorted."""
        return {
            "events": self.events,
            "charged": self.charged,
            "refused_funds": self.refused_funds,
            "refused_terms": self.refused_terms,
            "refused_input": self.refused_input,
            "first_refused_at": self.first_refused_at,
            "overage": self.overage,
            "breakage": self.breakage,
            "overage_billed": {c: v for c, v in sorted(self.overage_billed.items()) if v},
            "revenue": {c: v for c, v in sorted(self.revenue.items()) if v},
        }


class Tally:
    """Figures from ledger moves, one account at a time. Revenue follows the revenue model
    (apps/revenue/posting.py): each grant's moves in the range become lines of one month
    after what left the grant before it, and their cents are released by the same
    `amounts_of`, so a grant earns its basis once, to the cent, over its whole life."""

    def __init__(self, *, key=id):
        self.key = key  # how moves name a grant: its id() in a replay, its pk in the ledger
        self.figures = Figures()
        self.out_at_start = {}
        self.grants = {}
        self.moves = defaultdict(lambda: defaultdict(Decimal))

    def starting(self, grants):
        """Grants as they stood at the range start (their `remaining` then)."""
        for grant in grants:
            self.out_at_start[self.key(grant)] = grant.amount - grant.remaining

    def usage(self, credits):
        self.figures.events += 1
        self.figures.charged += credits

    def entry(self, kind, amount, grant):
        if grant is None:
            if kind == LedgerEntry.Kind.OVERAGE:
                self.figures.overage -= amount
            return
        line = LINE_KIND.get((kind, 1 if amount > 0 else -1))
        if line is None:
            return
        key = self.key(grant)
        self.grants[key] = grant
        self.moves[key][line] += abs(amount)
        if line == Line.GRANTED:
            self.out_at_start.setdefault(key, ZERO)
            if grant.debt_settled:  # the part of a new grant that paid back overage: used
                self.moves[key][Line.SETTLED] += grant.debt_settled
            if grant.source == CreditGrant.Source.OVERAGE:
                self.figures.overage_billed[grant.currency] += grant.basis_amount
        elif line == Line.EXPIRED:
            self.figures.breakage -= amount

    def close(self):
        """The figures, with the revenue the range's moves released."""
        for key, moved in self.moves.items():
            grant = self.grants[key]
            if not grant.basis_amount:
                continue
            before = self.out_at_start.get(key, ZERO)
            lines = [SimpleNamespace(month=0, dated_month=0, kind=Line.CONSUMED, credits=before)]
            lines += [
                SimpleNamespace(month=1, dated_month=1, kind=kind, credits=credits)
                for kind, credits in moved.items()
            ]
            for line, amount in amounts_of(grant, lines):
                if line.month == 1 and line.kind in RECOGNISED:
                    self.figures.revenue[grant.currency] += amount
        return self.figures


def _money(values):
    found = defaultdict(Decimal)
    for currency, amount in values.items():
        found[currency] = Decimal(amount)
    return found
