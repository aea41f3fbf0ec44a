from django.apps import AppConfig


class PeriodsConfig(AppConfig):
    name = "apps.periods"
    verbose_name = "Billing periods and jobs"
