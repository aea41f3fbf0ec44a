"""Staff groups with least privilege (README, "The admin"). Frozen here: later issues add
permissions in migrations of their own rather than editing this one."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

CATALOG = ["credittype", "feature", "plan", "planallowance", "planfeature", "creditpack"]

GROUPS = {
    # Pricing staff own the price book and nothing else.
    "Pricing": [
        ("catalog", model, action)
        for model in CATALOG
        for action in ("add", "change", "delete", "view")
    ],
    # Finance reads the price book and manages accounts and their plans (never deletes them).
    "Finance": [("catalog", model, "view") for model in CATALOG]
    + [
        ("accounts", model, action)
        for model in ("account", "subscription")
        for action in ("add", "change", "view")
    ],
    # Support reads accounts and the price book to answer customers.
    "Support": [("catalog", model, "view") for model in CATALOG]
    + [("accounts", model, "view") for model in ("account", "subscription")],
}


def create_groups(apps, schema_editor):
    # Permissions are normally created after all migrations (post_migrate); make them now.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None

    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, wanted in GROUPS.items():
        group, _ = Group.objects.get_or_create(name=name)
        for app_label, model, action in wanted:
            group.permissions.add(
                Permission.objects.get(
                    content_type__app_label=app_label, codename=f"{action}_{model}"
                )
            )


def remove_groups(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=GROUPS).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("catalog", "0001_initial"),
        ("accounts", "0001_initial"),
    ]

    operations = [migrations.RunPython(create_groups, remove_groups)]
