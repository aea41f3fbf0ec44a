from django.apps import AppConfig


class JobsConfig(AppConfig):
    name = "apps.jobs"
    verbose_name = "Scheduled jobs"

    def ready(self):
        from apps.core.metrics import register_collector

        from . import jobs  # noqa: F401 - registers the outbox sweeper
        from .metrics import job_gauges

        register_collector(name="jobs", collect=job_gauges)
