"""Finance reads the revenue pages and closes months. Reopening a closed month goes to no
group: a superuser gives `revenue.reopen_month` to the one controller who may reopen."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

GRANTS = {"Finance": ["view_revenuemonth", "close_month"]}


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
            content_type__app_label="revenue", codename__in=codenames
        )
        (group.permissions.add if add else group.permissions.remove)(*permissions)


class Migration(migrations.Migration):
    dependencies = [("core", "0006_report_permissions"), ("revenue", "0002_beat_schedule")]

    operations = [
        migrations.RunPython(lambda a, s: _apply(a, add=True), lambda a, s: _apply(a, add=False))
    ]
