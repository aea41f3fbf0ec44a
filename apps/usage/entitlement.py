"""What an account may consume and how much, shared by consume (services) and check
(selectors): parsing a quantity, the order in which a consume is refused, and the quota
counters. The terms themselves come from `selectors.terms_for` (apps/usage/sql/terms.sql)."""

from django.db.models import Q

from apps.accounts.models import Account
from apps.catalog.models import Feature
from apps.core.decimals import CREDIT_DIGITS, CREDIT_PLACES, DecimalInputError, parse_decimal
from apps.core.errors import (
    AccountSuspended,
    FeatureNotEnabled,
    FeatureNotFound,
    InvalidInput,
    QuotaExceeded,
)
from apps.wallets.ledger import ZERO

from .models import UsageCounter
from .outcomes import boolean_feature


def parse_quantity(value, *, field="quantity"):
    try:
        quantity = parse_decimal(value, places=CREDIT_PLACES, digits=CREDIT_DIGITS)
    except DecimalInputError as exc:
        raise InvalidInput(f"{field} {exc}.", details={field: [str(exc)]}) from None
    if quantity <= 0:
        raise InvalidInput(f"{field} must be greater than zero.", details={field: ["must be > 0"]})
    return quantity


def usable(account, t):
    """Whether a consume under these terms may charge: what `resolve_terms` lets through, as
    a test (to choose the wallets and counters to lock before deciding)."""
    return (
        account.status == Account.Status.ACTIVE
        and t.feature.kind == Feature.Kind.METERED
        and t.enabled
    )


def resolve_terms(account, terms, feature_code):
    """The terms that apply, or the domain error that stops the consume."""
    if account.status != Account.Status.ACTIVE:
        raise AccountSuspended()
    t = terms.get(feature_code)
    if t is None:
        raise FeatureNotFound.of(feature_code)
    if not t.enabled:  # whatever its kind
        raise FeatureNotEnabled.of(feature_code)
    if t.feature.kind != Feature.Kind.METERED:
        raise boolean_feature(feature_code)
    return t


class Counters:
    """Period usage for quotas. Writers load it locked, after the wallets (the lock order
    everywhere): a feature that costs nothing has no wallet lock to serialise its quota."""

    def __init__(self, rows):
        self.rows = rows  # (account_id, feature_id, period_start) -> UsageCounter
        self.touched = {}

    @classmethod
    def load(cls, terms_by_account, *, lock):
        keys = sorted(
            (account_id, t.feature.pk, t.period_start)
            for account_id, terms in terms_by_account.items()
            for t in terms.values()
            if t.limit_per_period is not None and t.period_start is not None
        )
        if not keys:
            return cls({})
        if lock:
            # The rows must exist to be locked; a zero row is what "nothing used" means.
            UsageCounter.objects.bulk_create(
                [UsageCounter(account_id=a, feature_id=f, period_start=p) for a, f, p in keys],
                ignore_conflicts=True,
            )
        match = Q()
        for account_id, feature_id, period_start in keys:
            match |= Q(account_id=account_id, feature_id=feature_id, period_start=period_start)
        counters = UsageCounter.objects.filter(match)
        if lock:
            counters = counters.order_by("pk").select_for_update()
        return cls({(c.account_id, c.feature_id, c.period_start): c for c in counters})

    def _key(self, account_id, t):
        if t.limit_per_period is None or t.period_start is None:
            return None
        return (account_id, t.feature.pk, t.period_start)

    def used(self, account_id, t):
        key = self._key(account_id, t)
        counter = self.rows.get(key) if key else None
        return counter.used if counter else ZERO

    def check(self, account_id, t, quantity):
        if self._key(account_id, t) is None:
            return
        used = self.used(account_id, t)
        if used + quantity > t.limit_per_period:
            raise QuotaExceeded.of(feature=t.feature.code, limit=t.limit_per_period, used=used)

    def add(self, account_id, t, quantity):
        key = self._key(account_id, t)
        if key is None:
            return
        counter = self.rows[key]  # loaded with lock=True, which creates missing rows
        counter.used += quantity
        self.rows[key] = self.touched[key] = counter

    def save(self):
        """Write back what was added (the rows were loaded locked)."""
        if self.touched:
            UsageCounter.objects.bulk_update(list(self.touched.values()), ["used"])
