from django.apps import AppConfig


class UsageConfig(AppConfig):
    name = "apps.usage"
    verbose_name = "Usage"

    def ready(self):
        from . import jobs  # noqa: F401 - registers the app's scheduled jobs
