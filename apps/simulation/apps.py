from django.apps import AppConfig


class SimulationConfig(AppConfig):
    name = "apps.simulation"
    verbose_name = "Pricing simulator"

    def ready(self):
        from . import jobs  # noqa: F401 - registers the app's scheduled job
