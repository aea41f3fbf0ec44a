from django.apps import AppConfig


class PeriodsConfig(AppConfig):
    name = "apps.periods"
    verbose_name = "Billing periods"

    def ready(self):
        from . import jobs  # noqa: F401 - registers the app's scheduled jobs
