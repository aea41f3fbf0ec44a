"""Run by tests/core/test_replicas.py in a process of its own, whose DATABASE_URL is a primary
and DATABASE_REPLICA_URLS its streaming replica (both started by the test). Drives the API
through Django's test client while the replica's replay is paused and resumed, and prints
what it saw as JSON: the test asserts on it."""

import json
import re
import sys
import time


def main():
    import django

    django.setup()
    from django.conf import settings
    from django.db import connections, transaction
    from django.test import Client

    from apps.accounts.services import create_api_key
    from apps.core.replicas import replica_reads
    from apps.usage.models import UsageEvent
    from tests.factories import UserFactory
    from tests.ledger import priced_account

    def on_replica(sql):
        with connections["replica_1"].cursor() as cursor:
            cursor.execute(sql)
            return cursor.fetchone()

    def replayed():
        """Until the replica has replayed everything the primary has written."""
        with connections["default"].cursor() as cursor:
            cursor.execute("SELECT pg_current_wal_lsn()")
            (target,) = cursor.fetchone()
        for _ in range(200):
            (done,) = on_replica(f"SELECT pg_last_wal_replay_lsn() >= '{target}'::pg_lsn")
            if done:
                return
            time.sleep(0.05)
        raise AssertionError("the replica did not catch up")

    def past_the_health_check():
        time.sleep(settings.DATABASE_REPLICA_CHECK_INTERVAL + 0.2)

    def routed_to():
        with replica_reads():
            return UsageEvent.objects.all().db

    account, _ = priced_account(credits=10, credits_per_unit="1", external_id="acme")
    _, raw = create_api_key(name="replica test", scopes=["usage:read", "usage:write"])
    api = Client(HTTP_AUTHORIZATION=f"Bearer {raw}")

    def usage_listed():
        return len(api.get("/api/v1/accounts/acme/usage").json()["events"])

    staff = Client()
    staff.force_login(UserFactory(is_staff=True, is_superuser=True))

    def on_admin_list():
        page = staff.get("/admin/usage/usageevent/").content.decode()
        return len(set(re.findall(r"/admin/usage/usageevent/(\d+)/change/", page)))

    def exported():
        export = staff.get("/admin/usage/usageevent/export.csv")
        return len(b"".join(export.streaming_content).decode().splitlines()) - 1  # the header

    def consume(quantity):
        body = {"account": "acme", "feature": "api_call", "quantity": quantity}
        return api.post("/api/v1/consume", body, content_type="application/json").status_code

    seen = {}
    replayed()
    seen["caught up: history reads go to"] = routed_to()
    seen["caught up: money reads go to"] = UsageEvent.objects.all().db
    with replica_reads(), transaction.atomic():
        seen["caught up: history reads inside a transaction go to"] = UsageEvent.objects.all().db

    on_replica("SELECT pg_wal_replay_pause()")
    seen["paused: consume 6 of 10"] = consume("6")
    seen["paused: consume 6 more"] = consume("6")
    check = api.post("/api/v1/check", {"account": "acme", "feature": "api_call", "quantity": "5"},
                     content_type="application/json").json()  # fmt: skip
    seen["paused: check 5"] = [check["allowed"], check["available"]]
    wallets = api.get("/api/v1/accounts/acme/balance").json()["wallets"]
    seen["paused: balance"] = [w["available"] for w in wallets]
    seen["paused, within the lag allowed: usage listed"] = usage_listed()
    seen["paused, within the lag allowed: ledger entries listed"] = len(
        api.get("/api/v1/accounts/acme/ledger").json()["results"]
    )
    seen["paused, within the lag allowed: usage events on the admin's list"] = on_admin_list()
    seen["paused, within the lag allowed: usage events exported"] = exported()

    settings.DATABASE_REPLICA_MAX_LAG = 0.5
    past_the_health_check()
    seen["paused past the lag allowed: history reads go to"] = routed_to()
    seen["paused past the lag allowed: usage listed"] = usage_listed()
    seen["paused past the lag allowed: usage events on the admin's list"] = on_admin_list()
    seen["paused past the lag allowed: usage events exported"] = exported()

    on_replica("SELECT pg_wal_replay_resume()")
    replayed()
    past_the_health_check()
    seen["resumed: history reads go to"] = routed_to()
    seen["resumed: usage listed"] = usage_listed()

    settings.DATABASE_REPLICA_MAX_LAG = 60
    past_the_health_check()
    seen["replica stopped: history reads go to"] = "stop the replica"
    print(json.dumps(seen), flush=True)
    sys.stdin.readline()  # the test stops the replica, then says go on
    past_the_health_check()
    seen = {"replica stopped: history reads go to": routed_to(),
            "replica stopped: usage listed": usage_listed()}  # fmt: skip
    print(json.dumps(seen), flush=True)


if __name__ == "__main__":
    main()
