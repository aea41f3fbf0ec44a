from django.apps import AppConfig


class OfflineStripeConfig(AppConfig):
    """Installed by the local settings only: `manage.py offline_stripe` for `make run`."""

    name = "devtools.offline_stripe"
    verbose_name = "Offline Stripe (development)"
