"""Finance reads and corrects the ledger; Support reads it. Pricing has no part in it."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

LEDGER_MODELS = [
    ("wallets", "wallet"),
    ("wallets", "creditgrant"),
    ("wallets", "ledgerentry"),
    ("wallets", "reservation"),
    ("usage", "usageevent"),
]
GRANTS = {
    "Finance": [(app, f"view_{model}") for app, model in LEDGER_MODELS]
    + [("wallets", "grant_credits"), ("wallets", "claw_back_credits")],
    "Support": [(app, f"view_{model}") for app, model in LEDGER_MODELS],
}


def add(apps, schema_editor):
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, wanted in GRANTS.items():
        group, _ = Group.objects.get_or_create(name=name)
        for app_label, codename in wanted:
            group.permissions.add(
                Permission.objects.get(content_type__app_label=app_label, codename=codename)
            )


def remove(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, wanted in GRANTS.items():
        group = Group.objects.filter(name=name).first()
        for app_label, codename in wanted if group else ():
            group.permissions.remove(
                *Permission.objects.filter(content_type__app_label=app_label, codename=codename)
            )


class Migration(migrations.Migration):
    dependencies = [
        ("core", "0001_staff_groups"),
        ("wallets", "0002_ledger_append_only"),
        ("usage", "0001_initial"),
    ]

    operations = [migrations.RunPython(add, remove)]
