from django.apps import AppConfig


class RevenueConfig(AppConfig):
    name = "apps.revenue"
    verbose_name = "Revenue"

    def ready(self):
        from . import jobs  # noqa: F401 - registers the app's scheduled jobs
