"""Bulk export is a right of its own, separate from viewing (docs/exports.md, "Who may
export"): `core.export_data`, on a model without a table, given to Finance. Support keeps
reading the ledger, usage and purchases screen by screen but no longer exports them; Pricing
views no exportable list, so it gets nothing."""

from django.db import migrations, models

from apps.core.group_grants import grant_to_groups


class Migration(migrations.Migration):
    dependencies = [("core", "0007_revenue_permissions")]

    operations = [
        migrations.CreateModel(
            name="DataExport",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
            ],
            options={
                "permissions": [("export_data", "Can export lists in bulk (CSV, JSON Lines)")],
                "managed": False,
                "default_permissions": (),
            },
        ),
        grant_to_groups({"Finance": ["export_data"]}, app_label="core"),
    ]
