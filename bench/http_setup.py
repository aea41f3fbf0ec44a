"""Set up (or tear down) the database of bench/http_consume.sh: 10,000 accounts with one
large grant each, a metered feature, and an API key with no rate limit worth the name.

    python bench/http_setup.py create DB     # prints the raw API key
    python bench/http_setup.py drop DB
"""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
PG = ["-h", "127.0.0.1", "-U", "postgres"]


def main(action, db, accounts=10000):
    if action == "drop":
        subprocess.run(["psql", *PG, "-q", "-d", "postgres", "-c",
                        f"DROP DATABASE IF EXISTS {db}"], check=True)  # fmt: skip
        return
    subprocess.run(["psql", *PG, "-q", "-d", "postgres", "-c", f"CREATE DATABASE {db}"],
                   check=True)  # fmt: skip
    os.environ["DATABASE_URL"] = f"postgres://postgres@127.0.0.1:5432/{db}"
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings.local"
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from consume_service import populate

    from apps.accounts.services import create_api_key

    populate(accounts)
    _, raw = create_api_key(name="bench", scopes=["usage:write", "usage:read", "accounts:write"],
                            rate_limit_per_minute=10**9)  # fmt: skip
    print(raw)


if __name__ == "__main__":
    main(*sys.argv[1:])
