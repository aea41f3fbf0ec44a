"""Finance and Support read the credit-pack purchases (what was paid, refunded, disputed)."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

GROUPS = ["Finance", "Support"]


def _apply(apps, *, add):
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    permission = apps.get_model("auth", "Permission").objects.get(
        content_type__app_label="billing", codename="view_purchase"
    )
    for name in GROUPS:
        group, _ = Group.objects.get_or_create(name=name)
        (group.permissions.add if add else group.permissions.remove)(permission)


class Migration(migrations.Migration):
    dependencies = [("core", "0003_job_and_webhook_permissions"), ("billing", "0001_purchase")]

    operations = [
        migrations.RunPython(lambda a, s: _apply(a, add=True), lambda a, s: _apply(a, add=False))
    ]
