"""PostgreSQL fast path: a consume is one call of `creditdesk_consume_v2`, a batch one call
of `creditdesk_consume_batch_v2` (apps/usage/sql/), instead of a dozen round trips per event.
Their rows become the same Outcomes, or the same domain errors, as the portable path in
services.py gives."""

import json
from contextlib import nullcontext

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connection, connections, transaction

from apps.core import clock, statements
from apps.core.errors import (
    AccountSuspended,
    FeatureNotEnabled,
    FeatureNotFound,
    IdempotencyKeyReused,
    InsufficientCredits,
    InvalidInput,
    QuotaExceeded,
)
from apps.wallets.ledger import cost_of, retry_on_idempotency_race

from .outcomes import (
    CREATED,
    FEATURE_IS_BOOLEAN,
    INVALID_COST,
    REPLAYED,
    ChargedUsage,
    Outcome,
    boolean_feature,
)
from .sql import CLOSING_SQLSTATE, CONSUME, CONSUME_BATCH

# The functions' names are constants of ours, not input. Both take the same arguments (arrays
# for the batch) and return the same rows.
SINGLE = f"SELECT * FROM {CONSUME.sql_name}(%s, %s, %s, %s, %s, %s::jsonb, %s, %s)"  # noqa: S608
BATCH = (
    f"SELECT * FROM {CONSUME_BATCH.sql_name}(%s::bigint[], %s::text[], %s::numeric[], "  # noqa: S608
    "%s::text[], %s::text[], %s::jsonb[], %s::timestamptz[], %s)"
)


def enabled():
    return connection.vendor == "postgresql" and settings.CONSUME_FAST_PATH


def consume(requests):
    """One Outcome per request, in order, from one durable transaction; None when the
    requests must take the portable path (a grant is due to be closed)."""
    rows = run(*_call(requests))
    if rows is None:
        return None
    return [outcome(request, row) for request, row in zip(requests, rows, strict=True)]


def run(sql, args):
    """The rows of one call of a consume function, in a durable transaction of its own; None
    when a grant is due to be closed (then nothing is written). A call that lost an
    idempotency race is made again (it then finds the winner's event)."""

    db = connections[DEFAULT_DB_ALIAS]

    def call():
        # One statement outside any transaction is a transaction of its own: all of it
        # commits or none, without the BEGIN and COMMIT round trips of atomic(). Inside one:
        # a durable atomic. (in_atomic_block rather than get_autocommit(), which connects.)
        scope = transaction.atomic(durable=True) if db.in_atomic_block else nullcontext()
        with scope:
            return statements.fetch_all(sql, args, db=db)

    try:
        return retry_on_idempotency_race(call)
    except DatabaseError as error:
        if getattr(error.__cause__, "sqlstate", None) == CLOSING_SQLSTATE:
            return None
        raise


def _call(requests):
    args = [
        [r.account.pk for r in requests],
        [r.feature for r in requests],
        [r.quantity for r in requests],
        [r.idempotency_key for r in requests],
        [r.fingerprint if r.idempotency_key else "" for r in requests],
        [json.dumps(r.metadata) for r in requests],
        [r.occurred_at for r in requests],
    ]
    if len(requests) == 1:
        sql, args = SINGLE, [column[0] for column in args]
    else:
        sql = BATCH
    args.append(clock.now())
    return sql, args


def outcome(request, row, *, account=None):
    """The Outcome of a consume function's row (its 13 columns) for `request`, charged to
    `account` (the request's if not given)."""
    (outcome, event_id, credit_type, credits_per_unit, credits, balance_after, available_after,
     occurred_at, created_at, required, available, limit, used) = row  # fmt: skip
    if outcome in (CREATED, REPLAYED):
        charged = ChargedUsage(
            pk=event_id,
            account=request.account if account is None else account,
            feature=request.feature,
            credit_type=credit_type,
            quantity=request.quantity,  # the fingerprint guarantees a replay's is the same
            credits_per_unit=credits_per_unit,
            credits=credits,
            balance_after=balance_after,
            available_after=available_after,
            metadata=request.metadata,
            occurred_at=occurred_at,
            created_at=created_at,
            idempotency_key=request.idempotency_key,
        )
        return Outcome(usage_event=charged, replayed=outcome == REPLAYED)
    if outcome == INVALID_COST:
        try:
            cost_of(request.quantity, credits_per_unit)  # words the error as the Python path
        except InvalidInput as error:
            return Outcome(error=error)
        raise AssertionError("the database and Python disagree on a cost")
    errors = {
        IdempotencyKeyReused.code: lambda: IdempotencyKeyReused(),
        AccountSuspended.code: lambda: AccountSuspended(),
        FeatureNotFound.code: lambda: FeatureNotFound.of(request.feature),
        FEATURE_IS_BOOLEAN: lambda: boolean_feature(request.feature),
        FeatureNotEnabled.code: lambda: FeatureNotEnabled.of(request.feature),
        QuotaExceeded.code: lambda: QuotaExceeded.of(
            feature=request.feature, limit=limit, used=used
        ),  # fmt: skip
        InsufficientCredits.code: lambda: InsufficientCredits.of(
            credit_type=credit_type, required=required, available=available
        ),
    }
    if outcome not in errors:
        raise AssertionError(f"a consume function returned {outcome!r}")
    return Outcome(error=errors[outcome]())
