"""Pricing starts and cancels simulations (a cancel is the run's only change); Finance reads
them. Support has no use for them."""

from django.db import migrations

from apps.core.group_grants import grant_to_groups


class Migration(migrations.Migration):
    dependencies = [("simulation", "0001_initial"), ("core", "0009_contract_permissions")]

    operations = [
        grant_to_groups(
            {
                "Pricing": ["view_simulationrun", "add_simulationrun", "change_simulationrun",
                            "view_simulationline"],
                "Finance": ["view_simulationrun", "view_simulationline"],
            },
            app_label="simulation",
        ),
    ]
