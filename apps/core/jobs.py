"""What a scheduled job did, counted the same way by every job (JobRun.counts keeps it)."""

from dataclasses import dataclass, field, replace
from decimal import Decimal

from .decimals import format_decimal

MAX_ERRORS_KEPT = 20


@dataclass
class JobCounts:
    renewed: int = 0  # subscriptions moved into a new period (or canceled at its end)
    periods: int = 0  # periods granted: a catch-up over three missed periods counts three
    canceled: int = 0
    granted: Decimal = Decimal(0)  # credits granted for new periods
    rolled_over: Decimal = Decimal(0)
    expired: Decimal = Decimal(0)  # breakage
    grants_expired: int = 0
    reservations_released: int = 0
    alerts: int = 0  # balance.low / balance.depleted events fired
    deliveries: int = 0  # webhook deliveries queued again
    chunks: int = 0
    failures: int = 0
    errors: list = field(default_factory=list)

    def tally(self, entries):
        """Count what ledger entries about to be written roll over and expire."""
        for entry in entries:
            if entry.kind == "expire":
                self.expired -= entry.amount
                self.grants_expired += 1
            elif entry.kind == "rollover" and entry.amount < 0:
                self.rolled_over -= entry.amount

    def fail(self, what, error):
        self.failures += 1
        if len(self.errors) < MAX_ERRORS_KEPT:
            self.errors.append(f"{what}: {type(error).__name__}: {error}")

    def copy(self):
        return replace(self, errors=list(self.errors))

    def restore(self, earlier):
        self.__dict__.update(earlier.copy().__dict__)

    def as_dict(self):
        """The non-zero counts, JSON-ready (Decimals as strings)."""
        return {
            name: format_decimal(value) if isinstance(value, Decimal) else value
            for name, value in self.__dict__.items()
            if value
        }
