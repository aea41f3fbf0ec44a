"""PostgreSQL fast path of consume and consume_batch: one call of the `creditdesk_consume`
function (migration usage/0002) per request or per batch, instead of a dozen round trips.
It returns rows that become the same Outcomes and domain errors as the portable path."""

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
BATCH = "SELECT * FROM creditdesk_consume_batch(%s::jsonb, %s)"


def enabled():
    return connection.vendor == "postgresql" and settings.CONSUME_FAST_PATH


def consume_all(requests):
    from .services import ChargedUsage, Outcome

    try:
        rows = _call(requests)
    except IntegrityError:
        if not any(r.idempotency_key for r in requests):
            raise
        rows = _call(requests)  # a racing repeat of a key committed first: now a replay
    outcomes = []
    for request, row in zip(requests, rows, strict=True):
        try:
            row = dict(zip(COLUMNS, row, strict=True))
            outcomes.append(_outcome(request, row, Outcome, ChargedUsage))
        except DomainError as error:  # built from the row by _error
            outcomes.append(Outcome(error=error))
    return outcomes


def _call(requests):
    now = timezone.now()
    with transaction.atomic(durable=True), connection.cursor() as cursor:
        if len(requests) == 1:
            r = requests[0]
            cursor.execute(SINGLE, [
                r.account.pk, r.feature, r.quantity, r.idempotency_key,
                r.fingerprint if r.idempotency_key else "", json.dumps(r.metadata),
                r.occurred_at, now,
            ])  # fmt: skip
            return [cursor.fetchone()]
        payload = [
            {
                "account_id": r.account.pk,
                "feature": r.feature,
                "quantity": str(r.quantity),
                "key": r.idempotency_key,
                "fingerprint": r.fingerprint if r.idempotency_key else "",
                "metadata": r.metadata,
                "occurred_at": r.occurred_at.isoformat() if r.occurred_at else None,
            }
            for r in requests
        ]
        cursor.execute(BATCH, [json.dumps(payload), now])
        return [row[1:] for row in cursor.fetchall()]


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
