"""The consume path's SQL functions: installed exactly as their files render from the Python
constants, and kept so by migrations (apps/core/sqlfunctions.py)."""

import os
import sys
from dataclasses import replace

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from apps.accounts import models as account_models
from apps.core.sqlfunctions import (
    BODY,
    Installs,
    SQLFunctionError,
    declared,
    render,
    write_migrations,
)
from apps.usage.sql import CONSUME, CONSUME_BATCH, FUNCTIONS, TERMS
from apps.wallets import models as wallet_models

EXPIRY_FIRST = (
    wallet_models.OrderKey("expires_at", nulls_last=True),
    wallet_models.OrderKey("priority"),
    wallet_models.OrderKey("id"),
)


def definition(name, schema="public"):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_get_functiondef(p.oid), p.prosrc FROM pg_proc p "
            "JOIN pg_namespace n ON n.oid = p.pronamespace WHERE p.proname = %s "
            "AND n.nspname = %s",
            [name, schema],
        )
        return cursor.fetchone()


def installed(name):
    return definition(name) is not None


@pytest.fixture
def new_migrations():
    """Removes the migration files a test writes with `write_migrations`."""
    written = []
    yield written
    for path in written:
        module = f"apps.usage.migrations.{path.rsplit('/', 1)[1].removesuffix('.py')}"
        sys.modules.pop(module, None)
        os.remove(path)


def test_every_declared_function_is_installed_by_the_migrations_as_it_renders():
    assert {f.sql_name for f in declared()} >= {f.sql_name for f in FUNCTIONS}
    assert Installs().problems() == []
    call_command("sqlfunctions", "--check")


@pytest.mark.postgres
@pytest.mark.django_db
@pytest.mark.parametrize("function", FUNCTIONS, ids=lambda f: f.sql_name)
def test_the_installed_function_is_the_rendered_file(function):
    """Its body is the file's, and PostgreSQL's own text of it is the same as of the rendered
    file installed afresh beside it (arguments, result, language, volatility, settings)."""
    text = function.render()
    definition_now, body_now = definition(function.sql_name)
    assert body_now == BODY.search(text).group(1)
    with connection.cursor() as cursor:
        cursor.execute("CREATE SCHEMA rendered")
        cursor.execute(text.replace(f"FUNCTION {function.sql_name}(", "FUNCTION rendered."
                                    f"{function.sql_name}(", 1))  # fmt: skip
    fresh, _ = definition(function.sql_name, schema="rendered")
    assert definition_now == fresh.replace("FUNCTION rendered.", "FUNCTION public.", 1)


@pytest.mark.parametrize(
    "constant, changed, stale",
    [
        (wallet_models, ("BURN_DOWN", EXPIRY_FIRST), {CONSUME_BATCH.sql_name, CONSUME.sql_name}),
        (
            account_models.Subscription,
            ("LIVE_STATUSES", (account_models.SubscriptionStatus.ACTIVE,)),
            {TERMS.sql_name},
        ),
    ],
    ids=["burn-down order", "live statuses"],
)
def test_the_check_fails_when_a_constant_changes_without_a_migration(
    monkeypatch, constant, changed, stale
):
    monkeypatch.setattr(constant, *changed)
    problems = Installs().problems()
    assert {p.split(":")[0] for p in problems} == stale
    assert all("sqlfunctions --make" in p for p in problems)
    with pytest.raises(CommandError, match="sqlfunctions --make"):
        call_command("sqlfunctions", "--check")


def test_a_changed_signature_needs_a_new_version(tmp_path):
    template = tmp_path / "terms.sql"
    template.write_text(
        TERMS.template.read_text().replace(
            "p_now timestamptz\n)", "p_now timestamptz, p_at timestamptz\n)"
        )
    )
    same_name = replace(TERMS, template=template)
    [problem, unmigrated] = Installs().problems([same_name])
    assert problem.startswith(f"{TERMS.sql_name}: its arguments or result differ")
    assert f"raise its version to {TERMS.version + 1}" in problem
    assert unmigrated.startswith(f"{TERMS.sql_name}: terms.sql renders a text no migration")

    next_version = replace(same_name, version=TERMS.version + 1)
    [unmigrated] = Installs().problems([next_version])
    assert unmigrated.startswith(f"{next_version.sql_name}: terms.sql renders a text no migration")


def test_an_unknown_placeholder_is_an_error():
    with pytest.raises(SQLFunctionError, match="unknown placeholder"):
        render("SELECT {{ no_such_constant }}, '{}'::jsonb", {"name": "f"})
    assert render("SELECT {{ a }}, '{}'::jsonb", {"a": 1}) == "SELECT 1, '{}'::jsonb"


@pytest.mark.postgres
@pytest.mark.django_db  # the test's transaction undoes what the operations do
def test_a_generated_migration_supersedes_the_old_install(monkeypatch, new_migrations):
    """A changed constant, then `--make`: the old migration's install is skipped (a database
    migrated from scratch installs the function once, as it renders now), the new one
    installs; backwards, the new one leaves the body and the first one drops the function."""
    installs = [op for _, op in Installs().of(CONSUME_BATCH.name)]
    old = installs[-1]
    first = next(op for op in installs if op.name == old.name)  # of this version
    monkeypatch.setattr(wallet_models, "BURN_DOWN", EXPIRY_FIRST)
    with connection.schema_editor() as editor, pytest.raises(SQLFunctionError, match="--make"):
        old.database_forwards("usage", editor, None, None)

    new_migrations += write_migrations(Installs(), name="expiry_first")
    assert Installs().problems() == []
    *_, (_, still_old), (key, new) = Installs().of(CONSUME_BATCH.name)
    assert still_old == old and key[1].endswith("_expiry_first")
    with connection.schema_editor() as editor:
        first.database_backwards("usage", editor, None, None)  # the first install: drops
    assert not installed(CONSUME_BATCH.sql_name)
    with connection.schema_editor() as editor:
        old.database_forwards("usage", editor, None, None)  # superseded: nothing
    assert not installed(CONSUME_BATCH.sql_name)
    with connection.schema_editor() as editor:
        new.database_forwards("usage", editor, None, None)
    assert "g.expires_at NULLS LAST, g.priority, g.id" in definition(CONSUME_BATCH.sql_name)[1]
    with connection.schema_editor() as editor:
        new.database_backwards("usage", editor, None, None)  # a later install: keeps it
    assert installed(CONSUME_BATCH.sql_name)
