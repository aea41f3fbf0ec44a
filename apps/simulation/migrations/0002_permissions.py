"""Pricing starts and cancels simulations (a cancel is the run's only change); Finance reads
them (and, holding the export permission, downloads a run's lines). Support has no use for
them."""

from django.db import migrations

from apps.core.group_grants import grant_to_groups


class Migration(migrations.Migration):
    dependencies = [("simulation", "0001_initial"), ("core", "0009_contract_permissions")]

    operations = [
        grant_to_groups(
            {
                "Pricing": ["view_simulationrun", "add_simulationrun", "change_simulationrun"],
                "Finance": ["view_simulationrun"],
            },
            app_label="simulation",
        ),
    ]
