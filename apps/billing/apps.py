from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "apps.billing"
    verbose_name = "Billing"

    def ready(self):
        from . import handlers  # noqa: F401  (connects the Stripe event receivers)
