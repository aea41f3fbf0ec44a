"""Finance and Support read the job runs and the webhook log, and may resend a delivery
(a customer's receiver was down). Endpoints, like API keys and schedules, are superusers'."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

READ = [("periods", "view_jobrun"), ("webhooks", "view_webhookevent"),
        ("webhooks", "view_webhookdelivery")]  # fmt: skip
GRANTS = {
    "Finance": [*READ, ("webhooks", "change_webhookdelivery")],
    "Support": [*READ, ("webhooks", "change_webhookdelivery")],
}


def add(apps, schema_editor):
    _apply(apps, add=True)


def remove(apps, schema_editor):
    _apply(apps, add=False)


def _apply(apps, *, add):
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, wanted in GRANTS.items():
        group, _ = Group.objects.get_or_create(name=name)
        for app_label, codename in wanted:
            permission = Permission.objects.get(
                content_type__app_label=app_label, codename=codename
            )
            (group.permissions.add if add else group.permissions.remove)(permission)


class Migration(migrations.Migration):
    dependencies = [
        ("core", "0002_ledger_permissions"),
        ("periods", "0001_initial"),
        ("webhooks", "0001_initial"),
    ]

    operations = [migrations.RunPython(add, remove)]
