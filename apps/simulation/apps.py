from django.apps import AppConfig


class SimulationConfig(AppConfig):
    name = "apps.simulation"
    verbose_name = "Pricing simulator"
