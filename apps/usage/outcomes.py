"""What a consume returns, on either path: the fast path (fast_path.py) builds the same
Outcomes from the database function's rows as the portable path (services.py) does."""

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from apps.accounts.models import Account
from apps.core.errors import DomainError, InvalidInput

# Outcomes the consume function reports besides the domain errors' codes (apps/core/errors).
CREATED = "created"
REPLAYED = "replayed"
FEATURE_IS_BOOLEAN = "feature_is_boolean"  # an InvalidInput, worded by `boolean_feature`
INVALID_COST = "invalid_cost"  # an InvalidInput, worded by `cost_of`
ALLOWED = "allowed"  # a check's yes
# Why the API's one-statement calls (apps/usage/sql/api_caller.sql) refused a caller, in the
# order Django REST framework checks them; Django then answers the request in the API's words.
REFUSED_KEY = "not_authenticated"
REFUSED_SCOPE = "permission_denied"
REFUSED_RATE = "throttled"
REFUSED_ACCOUNT = "not_found"
REFUSALS = (REFUSED_KEY, REFUSED_SCOPE, REFUSED_RATE, REFUSED_ACCOUNT)
# Where an account's terms for a feature come from (entitlements' `source`): its contract
# (where it sets any term of the feature), its plan version ("plan:pro@v3") or, without a
# plan, the feature's own.
SOURCE_CONTRACT = "contract"
SOURCE_PLAN = "plan:"
SOURCE_FEATURE = "feature"


@dataclass(frozen=True, slots=True)
class ChargedUsage:
    """What one consume charged, as the API reports it. Both consume paths return this (the
    fast path never builds a model instance: it costs more than the database call)."""

    pk: int
    account: Account  # or api_calls.CallerAccount, the fast lane's: what an answer shows of it
    feature: str
    credit_type: str
    quantity: Decimal
    credits_per_unit: Decimal
    credits: Decimal
    balance_after: Decimal
    available_after: Decimal
    metadata: dict
    occurred_at: datetime
    created_at: datetime
    idempotency_key: str | None

    @classmethod
    def of(cls, event):
        return cls(
            pk=event.pk,
            account=event.account,
            feature=event.feature.code,
            credit_type=event.credit_type.code,
            quantity=event.quantity,
            credits_per_unit=event.credits_per_unit,
            credits=event.credits,
            balance_after=event.balance_after,
            available_after=event.available_after,
            metadata=event.metadata,
            occurred_at=event.occurred_at,
            created_at=event.created_at,
            idempotency_key=event.idempotency_key,
        )


@dataclass
class Outcome:
    """One consume's result: what it charged (new or replayed), or the domain error."""

    usage_event: ChargedUsage | None = None
    replayed: bool = False
    error: DomainError | None = None


def boolean_feature(code):
    return InvalidInput(
        f"{code!r} is an on/off feature; there is nothing to consume.",
        details={"feature": ["boolean features cannot be consumed"]},
    )
