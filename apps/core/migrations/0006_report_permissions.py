"""Pricing and Finance read the usage reports (apps/usage/report_admin.py); Support does not.
Each report has its own view permission, on its proxy model."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

REPORTS = [
    "view_featureusagereport",
    "view_planfitreport",
    "view_topaccountsreport",
    "view_quotareport",
    "view_creditflowreport",
]
GRANTS = {"Pricing": REPORTS, "Finance": REPORTS}


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
            content_type__app_label="usage", codename__in=codenames
        )
        (group.permissions.add if add else group.permissions.remove)(*permissions)


class Migration(migrations.Migration):
    dependencies = [("core", "0005_outbox"), ("usage", "0008_reports")]

    operations = [
        migrations.RunPython(lambda a, s: _apply(a, add=True), lambda a, s: _apply(a, add=False))
    ]
