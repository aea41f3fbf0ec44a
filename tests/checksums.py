"""A fingerprint of what is stored, to prove that something wrote nothing."""

import hashlib

from django.apps import apps

# The data a simulation must never change: the catalog, accounts and subscriptions, wallets,
# grants and the ledger, usage, revenue.
LIVE_APPS = ("catalog", "accounts", "wallets", "usage", "revenue")


def live_checksums():
    """`{table: digest of its rows in primary key order}` for every table of LIVE_APPS."""
    sums = {}
    for label in LIVE_APPS:
        for model in apps.get_app_config(label).get_models(include_auto_created=True):
            if model._meta.proxy or not model._meta.managed:
                continue
            rows = model._base_manager.order_by("pk").values_list()
            sums[model._meta.db_table] = hashlib.sha256(repr(list(rows)).encode()).hexdigest()
    return sums
