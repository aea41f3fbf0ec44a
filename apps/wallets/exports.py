"""The ledger's export columns, in one place: the admin's *Export* links on the ledger list and
`manage.py export_ledger` both write these (docs/exports.md)."""

from apps.core.exports import DATETIME, DECIMAL, ID, Column

LEDGER_COLUMNS = [
    Column("id", kind=ID),
    Column("created_at", kind=DATETIME),
    Column("account", "account__external_id"),
    Column("credit_type", "wallet__credit_type__code"),
    Column("kind"),
    Column("amount", kind=DECIMAL),
    Column("balance_after", kind=DECIMAL),
    Column("held_change", kind=DECIMAL),
    Column("grant_id", kind=ID),
    Column("usage_event_id", kind=ID),
    Column("reservation_id", kind=ID),
    Column("acting_user", "acting_user__username"),
    Column("reason"),
]
