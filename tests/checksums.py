"""A fingerprint of what is stored, to prove that something wrote nothing."""

import hashlib

from django.apps import apps


def live_checksums():
    """`{table: digest of its rows in primary key order}` for every table of the product's
    apps (apps/): the catalog, accounts, the ledger, usage, revenue, billing, webhooks and
    their outbox, jobs."""
    sums = {}
    for config in apps.get_app_configs():
        if not config.name.startswith("apps."):
            continue
        for model in config.get_models(include_auto_created=True):
            if model._meta.proxy or not model._meta.managed:
                continue
            rows = model._base_manager.order_by("pk").values_list()
            sums[model._meta.db_table] = hashlib.sha256(repr(list(rows)).encode()).hexdigest()
    return sums
