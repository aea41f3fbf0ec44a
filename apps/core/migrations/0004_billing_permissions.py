"""Finance and Support read the credit-pack purchases (what was paid, refunded, disputed),
the overage charges and auto-recharge terms; Finance sets auto-recharge terms up."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

READ = ["view_purchase", "view_overagecharge", "view_autorecharge"]
GRANTS = {"Finance": [*READ, "add_autorecharge", "change_autorecharge"], "Support": READ}


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
            content_type__app_label="billing", codename__in=codenames
        )
        (group.permissions.add if add else group.permissions.remove)(*permissions)


class Migration(migrations.Migration):
    dependencies = [("core", "0003_job_and_webhook_permissions"), ("billing", "0004_autorecharge")]

    operations = [
        migrations.RunPython(lambda a, s: _apply(a, add=True), lambda a, s: _apply(a, add=False))
    ]
