from django.apps import AppConfig


class WalletsConfig(AppConfig):
    name = "apps.wallets"
    verbose_name = "Wallets"

    def ready(self):
        from . import jobs  # noqa: F401 - registers the app's scheduled jobs
