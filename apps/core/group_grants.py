"""Giving staff groups their permissions in a data migration, written once: the permissions
are created first (Django only creates them after all migrations have run), then added to
(or, going back, removed from) each group."""

from django.contrib.auth.management import create_permissions
from django.db import migrations


def _apply(apps, grants, app_label, *, add):
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, codenames in grants.items():
        group, _ = Group.objects.get_or_create(name=name)
        permissions = Permission.objects.filter(
            content_type__app_label=app_label, codename__in=codenames
        )
        (group.permissions.add if add else group.permissions.remove)(*permissions)


def grant_to_groups(grants, *, app_label):
    """A migration operation giving each group in `grants` ({group: [codename, ...]}) those
    permissions of `app_label`; reversed, it takes them away."""
    return migrations.RunPython(
        lambda apps, _: _apply(apps, grants, app_label, add=True),
        lambda apps, _: _apply(apps, grants, app_label, add=False),
    )
