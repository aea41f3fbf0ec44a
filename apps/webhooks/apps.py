from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    name = "apps.webhooks"
    verbose_name = "Outgoing webhooks"

    def ready(self):
        from apps.core import events

        from . import jobs  # noqa: F401 - registers the app's scheduled jobs
        from .services import record_ledger_events

        events.subscribe(events.LEDGER_FLUSHED, record_ledger_events)
