from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "apps.core"
    verbose_name = "CreditDesk"

    def ready(self):
        from django.core.signals import request_finished

        from . import metrics
        from .logging import forget_request_id

        request_finished.connect(forget_request_id, dispatch_uid="core.forget_request_id")
        metrics.register_collector(name="outbox", collect=metrics.outbox_gauges)
