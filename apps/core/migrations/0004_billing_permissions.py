"""Finance and Support read the credit-pack purchases (what was paid, refunded, disputed) and
the overage charges."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

GROUPS = ["Finance", "Support"]


def _apply(apps, *, add):
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    permissions = apps.get_model("auth", "Permission").objects.filter(
        content_type__app_label="billing", codename__in=["view_purchase", "view_overagecharge"]
    )
    for name in GROUPS:
        group, _ = Group.objects.get_or_create(name=name)
        (group.permissions.add if add else group.permissions.remove)(*permissions)


class Migration(migrations.Migration):
    dependencies = [("core", "0003_job_and_webhook_permissions"), ("billing", "0003_overagecharge")]

    operations = [
        migrations.RunPython(lambda a, s: _apply(a, add=True), lambda a, s: _apply(a, add=False))
    ]
