"""Run by the reliability tests in a process of their own, whose DATABASE_URL is a cluster
the test started (and breaks): `seed` fills it and prints the API key; `verify` prints, as
JSON, what the ledger holds (every usage event's tag from its metadata, and the idempotency
keys charged) and what verify_ledger and verify_revenue found."""

import json
import sys


def seed():
    from apps.accounts.services import create_api_key
    from tests.ledger import priced_account

    priced_account(credits=1_000_000, external_id="acme")
    _, raw = create_api_key(name="reliability", scopes=["usage:write", "usage:read"],
                            rate_limit_per_minute=10**9)  # fmt: skip
    print(raw)


def verify():
    from django.core.management import call_command
    from django.core.management.base import CommandError

    from apps.usage.models import UsageEvent
    from apps.wallets.selectors import ledger_violations

    events = UsageEvent.objects.values_list("metadata", "idempotency_key")
    try:
        call_command("verify_revenue", stdout=sys.stderr)
        revenue = []
    except CommandError as error:
        revenue = [str(error)]
    print(json.dumps({
        "tags": [metadata.get("tag") for metadata, _ in events],
        "keys": [key for _, key in events if key],
        "ledger_violations": ledger_violations(),
        "revenue_problems": revenue,
    }))  # fmt: skip


if __name__ == "__main__":
    import django

    django.setup()
    {"seed": seed, "verify": verify}[sys.argv[1]]()
