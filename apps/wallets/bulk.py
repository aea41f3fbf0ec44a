"""Bulk writes of the ledger engine. On PostgreSQL: COPY for the append-only rows and one
UPDATE ... FROM unnest(...) per table, because building Django model instances and
bulk_create's per-object work cost more than the database does. Elsewhere: the ORM's bulk
methods. Either way each call is one statement (COPY is logged like one)."""

import json
import time
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from django.db import connection, models

from apps.usage.models import UsageEvent

from .models import CreditGrant, LedgerEntry, Wallet


@dataclass(slots=True)
class PendingEntry:
    """A ledger entry about to be written (a model instance would cost more than the row)."""

    account_id: int
    wallet: Wallet
    kind: str
    amount: Decimal
    balance_after: Decimal
    held_change: Decimal
    created_at: datetime
    grant: object = None
    usage_event: object = None
    reservation: object = None
    acting_user: object = None
    reason: str = ""


@dataclass(slots=True)
class PendingUsageEvent:
    """A usage event about to be written; gets its `pk` when it is."""

    account: object
    feature: object
    credit_type: object
    quantity: Decimal
    credits_per_unit: Decimal
    credits: Decimal
    idempotency_key: str | None
    fingerprint: str
    metadata: dict
    occurred_at: datetime
    created_at: datetime
    balance_after: Decimal = Decimal(0)
    available_after: Decimal = Decimal(0)
    pk: int | None = None
    extra: dict = field(default_factory=dict)


EVENT_COLUMNS = (
    "id", "account_id", "feature_id", "credit_type_id", "quantity", "credits_per_unit",
    "credits", "balance_after", "available_after", "idempotency_key", "fingerprint", "metadata",
    "occurred_at", "created_at",
)  # fmt: skip
ENTRY_COLUMNS = (
    "account_id", "wallet_id", "kind", "amount", "balance_after", "held_change", "grant_id",
    "usage_event_id", "reservation_id", "acting_user_id", "reason", "created_at",
)  # fmt: skip


FEW = 32  # up to this many rows, a plain INSERT beats COPY's extra round trip


def _pk(obj):
    return None if obj is None else obj.pk


def _event_row(event, pk):
    return (pk, event.account.pk, event.feature.pk, event.credit_type.pk, event.quantity,
            event.credits_per_unit, event.credits, event.balance_after, event.available_after,
            event.idempotency_key, event.fingerprint, json.dumps(event.metadata),
            event.occurred_at, event.created_at)  # fmt: skip


def _entry_row(e):
    return (e.account_id, e.wallet.pk, e.kind, e.amount, e.balance_after, e.held_change,
            _pk(e.grant), _pk(e.usage_event), _pk(e.reservation), _pk(e.acting_user), e.reason,
            e.created_at)  # fmt: skip


def _copy(table, columns, rows):
    sql = f"COPY {table} ({', '.join(columns)}) FROM STDIN"
    started = time.monotonic()
    with (
        connection.cursor() as cursor,
        connection.wrap_database_errors,
        cursor.cursor.copy(sql) as copy,
    ):
        for row in rows:
            copy.write_row(row)
    if connection.queries_logged:
        connection.queries_log.append(
            {"sql": f"{sql} -- {len(rows)} rows", "time": f"{time.monotonic() - started:.3f}"}
        )


def insert_usage_events(events):
    """Write new usage events (model instances or PendingUsageEvents) and set their pks."""
    if connection.vendor != "postgresql":
        models = [
            e if isinstance(e, UsageEvent) else UsageEvent(
                account=e.account, feature=e.feature, credit_type=e.credit_type,
                quantity=e.quantity, credits_per_unit=e.credits_per_unit, credits=e.credits,
                balance_after=e.balance_after, available_after=e.available_after,
                idempotency_key=e.idempotency_key, fingerprint=e.fingerprint,
                metadata=e.metadata, occurred_at=e.occurred_at, created_at=e.created_at,
            )
            for e in events
        ]  # fmt: skip
        UsageEvent.objects.bulk_create(models)
        for event, model in zip(events, models, strict=True):
            event.pk = model.pk
        return
    if len(events) <= FEW:
        # One INSERT ... RETURNING (ids come back in VALUES order, as bulk_create relies on).
        columns = EVENT_COLUMNS[1:]
        row = "(" + ", ".join(["%s"] * len(columns)) + ")"
        with connection.cursor() as cursor:
            cursor.execute(
                # Only constant column names and placeholders are formatted in; values are bound.
                f"INSERT INTO usage_usageevent ({', '.join(columns)}) "  # noqa: S608
                f"VALUES {', '.join([row] * len(events))} RETURNING id",
                [value for e in events for value in _event_row(e, None)[1:]],
            )
            ids = [r[0] for r in cursor.fetchall()]
    else:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT nextval(pg_get_serial_sequence('usage_usageevent', 'id')) "
                "FROM generate_series(1, %s)",
                [len(events)],
            )
            ids = [r[0] for r in cursor.fetchall()]
        rows = [_event_row(e, pk) for e, pk in zip(events, ids, strict=True)]
        _copy("usage_usageevent", EVENT_COLUMNS, rows)
    for event, pk in zip(events, ids, strict=True):
        event.pk = pk
        if hasattr(event, "_state"):
            event._state.adding = False


def insert_grants(grants, *, now):
    """Write new grants and set their pks: one INSERT ... SELECT FROM unnest(arrays) on
    PostgreSQL whatever their number (a renewal chunk writes a thousand; bulk_create's
    per-field preparation cost more than the database did)."""
    for grant in grants:
        grant.created_at = grant.created_at or now
    if connection.vendor != "postgresql":
        CreditGrant.objects.bulk_create(grants)
        return
    fields = [f for f in CreditGrant._meta.concrete_fields if not f.primary_key]
    columns = ", ".join(f.column for f in fields)
    arrays = ", ".join(f"%s::{f.db_type(connection)}[]" for f in fields)
    # A decimal field's default is the int 0; psycopg refuses an array mixing it with
    # Decimals (a trial's grant, which has no price, written beside a rollover).
    decimals = {f.attname for f in fields if isinstance(f, models.DecimalField)}
    values = [
        [_decimal(getattr(g, f.attname)) for g in grants]
        if f.attname in decimals
        else [getattr(g, f.attname) for g in grants]
        for f in fields
    ]
    with connection.cursor() as cursor:
        cursor.execute(
            # Only column names and types from the model are formatted in; values are bound.
            f"INSERT INTO wallets_creditgrant ({columns}) "  # noqa: S608
            f"SELECT * FROM unnest({arrays}) RETURNING id",
            values,
        )
        ids = [row[0] for row in cursor.fetchall()]
    for grant, pk in zip(grants, ids, strict=True):
        grant.pk = pk
        grant._state.adding = False


def _decimal(value):
    return Decimal(value) if isinstance(value, int) else value


def insert_ledger_entries(entries):
    if connection.vendor == "postgresql":
        _copy("wallets_ledgerentry", ENTRY_COLUMNS, [_entry_row(e) for e in entries])
        return
    LedgerEntry.objects.bulk_create(
        [
            LedgerEntry(
                account_id=e.account_id,
                wallet=e.wallet,
                kind=e.kind,
                amount=e.amount,
                balance_after=e.balance_after,
                held_change=e.held_change,
                grant=e.grant,
                usage_event_id=_pk(e.usage_event),
                reservation=e.reservation,
                acting_user=e.acting_user,
                reason=e.reason,
                created_at=e.created_at,
            )
            for e in entries
        ]  # fmt: skip
    )


def create_wallets(keys, *, now):
    """Create the wallets for `(account_id, credit_type_id)` keys that do not exist yet;
    returns the ids of those this call created (PostgreSQL and SQLite both RETURNING)."""
    values = ", ".join(["(%s, %s, 0, 0, 0, %s, %s)"] * len(keys))
    with connection.cursor() as cursor:
        cursor.execute(
            # Only placeholders are formatted in; values are bound.
            "INSERT INTO wallets_wallet (account_id, credit_type_id, balance, held, debt, "  # noqa: S608
            f"created_at, updated_at) VALUES {values} ON CONFLICT DO NOTHING RETURNING id",
            [value for a, c in keys for value in (a, c, now, now)],
        )
        return {row[0] for row in cursor.fetchall()}


def delete_wallets(ids):
    """Remove wallets created in this transaction that nothing was written to."""
    with connection.cursor() as cursor:
        cursor.execute(
            # Only placeholders are formatted in; values are bound.
            "DELETE FROM wallets_wallet WHERE id IN (" + ", ".join(["%s"] * len(ids)) + ")",  # noqa: S608
            sorted(ids),
        )


def update_grants(grants):
    if connection.vendor != "postgresql":
        CreditGrant.objects.bulk_update(grants, ["remaining", "voided_at"])
        return
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE wallets_creditgrant g SET remaining = u.remaining, voided_at = u.voided_at "
            "FROM unnest(%s::bigint[], %s::numeric[], %s::timestamptz[]) "
            "AS u(id, remaining, voided_at) WHERE g.id = u.id",
            [[g.pk for g in grants], [g.remaining for g in grants], [g.voided_at for g in grants]],
        )


def update_wallets(wallets):
    if connection.vendor != "postgresql":
        Wallet.objects.bulk_update(wallets, ["balance", "held", "debt", "updated_at"])
        return
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE wallets_wallet w SET balance = u.balance, held = u.held, debt = u.debt, "
            "updated_at = u.updated_at FROM unnest(%s::bigint[], %s::numeric[], %s::numeric[], "
            "%s::numeric[], %s::timestamptz[]) AS u(id, balance, held, debt, updated_at) "
            "WHERE w.id = u.id",
            [[w.pk for w in wallets], [w.balance for w in wallets], [w.held for w in wallets],
             [w.debt for w in wallets], [w.updated_at for w in wallets]],
        )  # fmt: skip
