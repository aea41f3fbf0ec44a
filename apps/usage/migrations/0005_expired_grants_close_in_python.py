"""PostgreSQL: the consume functions leave the closing of grants past their expiry to the
Python ledger engine (apps/wallets/ledger.py `WalletState.close`), which rolls plan-period
credits over by their terms, expires the rest and records the `credits.expired` event. When
a wallet holds such a grant they raise SQLSTATE CD001 before writing anything, and the
caller runs the request on the portable path, which closes the grants, then charges. That
happens about once per wallet and expiry, so the hot path keeps its single statement while
closing lives in one place (the functions' own lazy expiry is no longer reached).

The function bodies are those of usage/0003 with this one check added (and asserted to
apply, so that an edit there cannot silently drop it)."""

from importlib import import_module

from django.db import migrations

previous = import_module("apps.usage.migrations.0003_consume_batch_function")

CLOSING_SQLSTATE = "CD001"
RAISE = (
    "RAISE EXCEPTION 'a grant is past its expiry' "
    f"USING ERRCODE = '{CLOSING_SQLSTATE}'; END IF;"
)


def _patch(sql, replacements):
    for old, new in replacements:
        assert sql.count(old) == 1, old
        sql = sql.replace(old, new)
    return sql


SINGLE = _patch(
    previous.SINGLE,
    [
        ("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION"),
        ("DECLARE\n", "DECLARE\n    v_closing boolean;\n"),
        (
            "SELECT COALESCE(SUM(x.remaining) FILTER (WHERE x.expires_at <= p_now), 0),",
            "SELECT COALESCE(SUM(x.remaining) FILTER (WHERE x.expires_at <= p_now), 0),\n"
            "               bool_or(x.expires_at <= p_now),",
        ),
        ("INTO v_expired, v_grant_ids", "INTO v_expired, v_closing, v_grant_ids"),
        (
            "FROM wallets_creditgrant x WHERE x.wallet_id = w.id AND x.remaining > 0;",
            "FROM wallets_creditgrant x WHERE x.wallet_id = w.id AND x.remaining > 0;\n"
            f"        IF v_closing THEN {RAISE}",
        ),
    ],
)

CONSUME_BATCH = _patch(
    previous.CONSUME_BATCH,
    [
        ("DECLARE\n", "DECLARE\n    g_closing boolean;\n"),
        (
            "array_agg(g.expires_at IS NOT NULL AND g.expires_at <= p_now",
            "bool_or(g.expires_at <= p_now),\n"
            "               array_agg(g.expires_at IS NOT NULL AND g.expires_at <= p_now",
        ),
        ("INTO g_id, g_left, g_wallet, g_expired", "INTO g_id, g_left, g_wallet, g_closing, g_expired"),
        (
            "JOIN wallets_creditgrant g ON g.wallet_id = w.id AND g.remaining > 0;",
            "JOIN wallets_creditgrant g ON g.wallet_id = w.id AND g.remaining > 0;\n"
            f"        IF g_closing THEN {RAISE}",
        ),
    ],
)


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        with schema_editor.connection.cursor() as cursor:
            cursor.execute(SINGLE)
            cursor.execute(CONSUME_BATCH)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        with schema_editor.connection.cursor() as cursor:
            cursor.execute(previous.SINGLE.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION"))
            cursor.execute(previous.CONSUME_BATCH)


class Migration(migrations.Migration):
    dependencies = [
        ("usage", "0004_fewer_indexes_on_hot_tables"),
        ("wallets", "0004_grant_rollover_terms"),
    ]

    operations = [migrations.RunPython(forward, backward)]
