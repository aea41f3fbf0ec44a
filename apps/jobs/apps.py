from django.apps import AppConfig


class JobsConfig(AppConfig):
    name = "apps.jobs"
    verbose_name = "Scheduled jobs"

    def ready(self):
        from . import jobs  # noqa: F401 - registers the outbox sweeper
