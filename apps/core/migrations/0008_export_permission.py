"""Bulk export is a right of its own, separate from viewing (docs/exports.md, "Who may
export"): `core.export_data`, on a model without a table, given to Finance. Support keeps
reading the ledger, usage and purchases screen by screen but no longer exports them; Pricing
views no exportable list, so it gets nothing."""

from django.contrib.auth.management import create_permissions
from django.db import migrations, models

GRANTS = {"Finance": ["export_data"]}


def _apply(apps, *, add):
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, codenames in GRANTS.items():
        group, _ = Group.objects.get_or_create(name=name)
        permissions = Permission.objects.filter(
            content_type__app_label="core", codename__in=codenames
        )
        (group.permissions.add if add else group.permissions.remove)(*permissions)


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
        migrations.RunPython(lambda a, s: _apply(a, add=True), lambda a, s: _apply(a, add=False)),
    ]
