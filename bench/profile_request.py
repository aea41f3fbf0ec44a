"""Where one API request's time goes: wall and CPU time per request, then cProfile, over
1,000 requests through the WSGI application gunicorn serves (config.wsgi: the fast lane in
front of Django), production settings, PostgreSQL, one thread.

    .venv/bin/python bench/profile_request.py consume|check|batch [cumulative|tottime]

Creates and drops its own database (1,000 accounts, as bench/consume_service.py fills it).
"""

import cProfile
import io
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

    from apps.accounts.services import create_api_key
    from config.wsgi import application

    call_command("migrate", verbosity=0)
    populate(1000)
    _, key = create_api_key(name="profile", scopes=["usage:write"], rate_limit_per_minute=10**9)

    def post(path, body):
        data = body.encode()
        environ = {
            "REQUEST_METHOD": "POST", "PATH_INFO": path, "SCRIPT_NAME": "",
            "SERVER_NAME": "testserver", "SERVER_PORT": "80", "HTTP_HOST": "testserver",
            "CONTENT_TYPE": "application/json", "CONTENT_LENGTH": str(len(data)),
            "HTTP_AUTHORIZATION": f"Bearer {key}", "wsgi.input": io.BytesIO(data),
            "wsgi.url_scheme": "http", "wsgi.errors": sys.stderr,
        }  # fmt: skip
        statuses = []
        answer = application(environ, lambda status, headers: statuses.append(status))
        b"".join(answer)
        getattr(answer, "close", lambda: None)()  # Django's request_finished
        assert statuses[0][:3] in ("200", "201"), statuses

    one = json.dumps({"account": "bench-5", "feature": "api_call"})
    path, body, n = {
        "consume": ("/api/v1/consume", one, 1000),
        "check": ("/api/v1/check", one, 1000),
        "batch": ("/api/v1/consume/batch",
                  json.dumps({"events": [{"account": "bench-1", "feature": "api_call"}] * 500}),
                  20),
    }[which]  # fmt: skip
    for _ in range(20):
        post(path, body)
    started, cpu = time.perf_counter(), time.process_time()
    for _ in range(n):
        post(path, body)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    print(f"{which}: {wall / n * 1000:.2f} ms per request, {cpu / n * 1000:.2f} ms of it CPU")
    profile = cProfile.Profile()
    profile.enable()
    for _ in range(n):
        post(path, body)
    profile.disable()
    pstats.Stats(profile).sort_stats(order).print_stats(int(os.environ.get("PROFILE_LINES", 40)))


if __name__ == "__main__":
    main(*sys.argv[1:])
