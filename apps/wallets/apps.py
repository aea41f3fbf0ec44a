from django.apps import AppConfig


class WalletsConfig(AppConfig):
    name = "apps.wallets"
    verbose_name = "Wallets"
