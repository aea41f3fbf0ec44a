"""Where one API request's time goes: cProfile over 1,000 requests through Django's test
client with production settings on PostgreSQL (single thread).

    .venv/bin/python bench/profile_request.py consume|check|batch [cumulative|tottime]

Creates and drops its own database (1,000 accounts, as bench/consume_service.py fills it).
"""

import cProfile
import json
import os
import pstats
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
DB = f"creditdesk_profile_{os.getpid()}"
PG = ["-h", "127.0.0.1", "-U", "postgres", "-q", "-d", "postgres", "-c"]


def main(which="consume", order="cumulative"):
    os.environ.update(
        DJANGO_SETTINGS_MODULE="config.settings.production", SECRET_KEY="profile-only",
        ALLOWED_HOSTS="testserver", SECURE_SSL_REDIRECT="false",
        DATABASE_URL=f"postgres://postgres@127.0.0.1:5432/{DB}",
        REDIS_URL=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/13"),
    )  # fmt: skip
    subprocess.run(["psql", *PG, f"CREATE DATABASE {DB}"], check=True)
    try:
        run(which, order)
    finally:
        from django.db import connections

        connections.close_all()
        subprocess.run(["psql", *PG, f"DROP DATABASE IF EXISTS {DB}"], check=True)


def run(which, order):
    import django

    django.setup()
    from consume_service import populate
    from django.core.management import call_command
    from django.test import Client

    from apps.accounts.services import create_api_key

    call_command("migrate", verbosity=0)
    populate(1000)
    _, key = create_api_key(name="profile", scopes=["usage:write"], rate_limit_per_minute=10**9)
    client = Client(HTTP_AUTHORIZATION=f"Bearer {key}")
    one = json.dumps({"account": "bench-5", "feature": "api_call"})
    path, body, n = {
        "consume": ("/api/v1/consume", one, 1000),
        "check": ("/api/v1/check", one, 1000),
        "batch": ("/api/v1/consume/batch",
                  json.dumps({"events": [{"account": "bench-1", "feature": "api_call"}] * 500}),
                  20),
    }[which]  # fmt: skip
    for _ in range(20):
        client.post(path, body, content_type="application/json")
    started = time.perf_counter()
    for _ in range(n):
        client.post(path, body, content_type="application/json")
    print(f"{which}: {(time.perf_counter() - started) / n * 1000:.2f} ms per request")
    profile = cProfile.Profile()
    profile.enable()
    for _ in range(n):
        client.post(path, body, content_type="application/json")
    profile.disable()
    pstats.Stats(profile).sort_stats(order).print_stats(40)


if __name__ == "__main__":
    main(*sys.argv[1:])
