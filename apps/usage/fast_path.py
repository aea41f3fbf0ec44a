"""PostgreSQL fast path of a single consume: one call of the `creditdesk_consume` function
(migration usage/0002) instead of a dozen round trips. Its row becomes the same Outcome, or
the same domain error, as the portable path in services.py gives."""

import json

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from apps.core.errors import (
    AccountSuspended,
    DomainError,
    FeatureNotEnabled,
    FeatureNotFound,
    IdempotencyKeyReused,
    InsufficientCredits,
    InvalidInput,
    QuotaExceeded,
)
from apps.wallets.ledger import exact_credits

COLUMNS = (
    "outcome", "usage_event_id", "feature_id", "feature_code", "credit_type_id",
    "credit_type_code", "quantity", "credits_per_unit", "credits", "balance_after",
    "available_after", "occurred_at", "created_at", "metadata", "d_required", "d_available",
    "d_limit", "d_used",
)  # fmt: skip
SINGLE = "SELECT * FROM creditdesk_consume(%s, %s, %s, %s, %s, %s::jsonb, %s, %s)"


def enabled():
    return connection.vendor == "postgresql" and settings.CONSUME_FAST_PATH


def consume_one(request):
    from .services import ChargedUsage, Outcome

    try:
        row = _call(request)
    except IntegrityError:
        if not request.idempotency_key:
            raise
        row = _call(request)  # a racing repeat of the key committed first: now a replay
    try:
        return [_outcome(request, dict(zip(COLUMNS, row, strict=True)), Outcome, ChargedUsage)]
    except DomainError as error:  # built from the row by _error
        return [Outcome(error=error)]


def _call(r):
    with transaction.atomic(durable=True), connection.cursor() as cursor:
        cursor.execute(SINGLE, [
            r.account.pk, r.feature, r.quantity, r.idempotency_key,
            r.fingerprint if r.idempotency_key else "", json.dumps(r.metadata), r.occurred_at,
            timezone.now(),
        ])  # fmt: skip
        return cursor.fetchone()


def _outcome(request, row, Outcome, ChargedUsage):
    outcome = row["outcome"]
    if outcome in ("created", "replayed"):
        charged = ChargedUsage(
            pk=row["usage_event_id"],
            account=request.account,
            feature=row["feature_code"],
            credit_type=row["credit_type_code"],
            quantity=row["quantity"],
            credits_per_unit=row["credits_per_unit"],
            credits=row["credits"],
            balance_after=row["balance_after"],
            available_after=row["available_after"],
            metadata=row["metadata"],
            occurred_at=row["occurred_at"],
            created_at=row["created_at"],
            idempotency_key=request.idempotency_key,
        )
        return Outcome(usage_event=charged, replayed=outcome == "replayed")
    raise _error(request, row)


def _error(request, row):
    from .services import boolean_feature

    outcome = row["outcome"]
    if outcome == "idempotency_key_reused":
        return IdempotencyKeyReused()
    if outcome == "account_suspended":
        return AccountSuspended()
    if outcome == "feature_not_found":
        return FeatureNotFound.of(request.feature)
    if outcome == "feature_is_boolean":
        return boolean_feature(request.feature)
    if outcome == "feature_not_enabled":
        return FeatureNotEnabled.of(request.feature)
    if outcome == "inexact_cost":
        try:
            exact_credits(row["credits"])
        except InvalidInput as error:
            return error
    if outcome == "quota_exceeded":
        return QuotaExceeded.of(feature=request.feature, limit=row["d_limit"], used=row["d_used"])
    if outcome == "insufficient_credits":
        return InsufficientCredits.of(
            credit_type=row["credit_type_code"],
            required=row["d_required"],
            available=row["d_available"],
        )
    raise AssertionError(f"creditdesk_consume returned {outcome!r}")
