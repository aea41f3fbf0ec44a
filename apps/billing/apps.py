from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "apps.billing"
    verbose_name = "Billing"

    def ready(self):
        from apps.core import events

        from . import (
            handlers,  # noqa: F401  (connects the Stripe event receivers)
            jobs,  # noqa: F401 - registers the app's scheduled jobs
        )
        from .contract_prices import bill_contract_soon
        from .overage import record_overage_charges

        events.subscribe(events.OVERAGE_SETTLED, record_overage_charges)
        events.subscribe(events.CONTRACT_CHANGED, bill_contract_soon)
