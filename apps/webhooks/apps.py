from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    name = "apps.webhooks"
    verbose_name = "Outgoing webhooks"

    def ready(self):
        from apps.core import events, metrics

        from . import jobs  # noqa: F401 - registers the app's scheduled jobs
        from .metrics import delivery_gauges
        from .services import record_ledger_events

        events.subscribe(events.LEDGER_FLUSHED, record_ledger_events)
        metrics.register_collector(name="webhooks", collect=delivery_gauges)
