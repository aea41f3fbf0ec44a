"""PostgreSQL: a feature the account's plan does not enable answers `feature_not_enabled`
whatever its kind, as the portable path does (apps/usage/services.py `_resolve`); only an
on/off feature the plan does enable answers `feature_is_boolean` (nothing to consume).
Without a plan, on/off features are not enabled (apps/usage/selectors.py `terms_for`).

The function bodies are those of usage/0005 with the entitlement checks reordered (each
replacement asserted to apply once)."""

from importlib import import_module

from django.db import migrations

previous = import_module("apps.usage.migrations.0005_expired_grants_close_in_python")
_patch = previous._patch

SINGLE = _patch(
    previous.SINGLE,
    [
        (
            "    ELSIF f.kind <> 'metered' THEN\n        outcome := 'feature_is_boolean';\n"
            "    END IF;\n",
            "    END IF;\n",
        ),
        ("            v_enabled := true;\n", "            v_enabled := f.kind = 'metered';\n"),
        (
            "        IF NOT v_enabled THEN outcome := 'feature_not_enabled'; END IF;\n",
            "        IF NOT v_enabled THEN outcome := 'feature_not_enabled';\n"
            "        ELSIF f.kind <> 'metered' THEN outcome := 'feature_is_boolean';\n"
            "        END IF;\n",
        ),
    ],
)

ON_OFF = (
    "        IF e_kind[i] <> 'metered' THEN o_outcome[i] := 'feature_is_boolean'; CONTINUE; "
    "END IF;\n"
)
NOT_ENABLED = (
    "        IF NOT e_enabled[i] THEN o_outcome[i] := 'feature_not_enabled'; CONTINUE; END IF;\n"
)
CONSUME_BATCH = _patch(previous.CONSUME_BATCH, [(ON_OFF + NOT_ENABLED, NOT_ENABLED + ON_OFF)])


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        with schema_editor.connection.cursor() as cursor:
            cursor.execute(SINGLE)
            cursor.execute(CONSUME_BATCH)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        with schema_editor.connection.cursor() as cursor:
            cursor.execute(previous.SINGLE)
            cursor.execute(previous.CONSUME_BATCH)


class Migration(migrations.Migration):
    dependencies = [("usage", "0005_expired_grants_close_in_python")]

    operations = [migrations.RunPython(forward, backward)]
