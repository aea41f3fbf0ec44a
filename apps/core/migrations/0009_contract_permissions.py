"""Finance makes and removes contracts (with their feature terms and included credits) in the
admin; Pricing and Support read them."""

from django.db import migrations

from apps.core.group_grants import grant_to_groups

MODELS = ["contract", "contractfeature", "contractallowance"]


class Migration(migrations.Migration):
    dependencies = [("core", "0008_export_permission"), ("catalog", "0007_contracts")]

    operations = [
        grant_to_groups(
            {
                "Finance": [f"{verb}_{model}" for verb in ("view", "add", "change", "delete")
                            for model in MODELS],
                "Pricing": [f"view_{model}" for model in MODELS],
                "Support": [f"view_{model}" for model in MODELS],
            },
            app_label="catalog",
        ),
    ]
