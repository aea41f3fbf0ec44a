"""Settings come from the environment; production refuses to start half-configured."""

import json
import subprocess
import sys
from pathlib import Path

from django.conf import settings

from tests.commands import BASE_ENV, PRODUCTION_ENV, manage


def test_production_refuses_to_start_without_its_required_variables():
    for missing in ("SECRET_KEY", "DATABASE_URL", "ALLOWED_HOSTS"):
        env = {k: v for k, v in PRODUCTION_ENV.items() if k != missing}
        result = manage("check", env=env)
        assert result.returncode != 0
        assert f"need these environment variables: {missing}" in result.stderr


def test_production_passes_the_deploy_check():
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=PRODUCTION_ENV)
    assert result.returncode == 0, result.stderr + result.stdout
    assert "no issues" in result.stdout


def test_production_ships_no_development_tools():
    """The offline Stripe and the demo data (devtools/) are installed by the local settings
    only: under production settings their commands do not exist."""
    for command in ("offline_stripe", "setup_demo"):
        result = manage(command, "--help", env=PRODUCTION_ENV)
        assert result.returncode != 0
        assert f"Unknown command: '{command}'" in result.stderr


def test_without_database_url_local_uses_sqlite_with_wal_and_immediate_transactions(tmp_path):
    code = (
        "import django; django.setup();"
        "from django.db import connection; from django.conf import settings;"
        "c = connection.cursor(); c.execute('PRAGMA journal_mode'); print(c.fetchone()[0]);"
        "print(settings.DATABASES['default']['OPTIONS']['transaction_mode']);"
        "print(settings.CELERY_BROKER_URL)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=settings.BASE_DIR,
        env={
            **BASE_ENV,
            "DJANGO_SETTINGS_MODULE": "config.settings.local",
            "SQLITE_PATH": str(tmp_path / "db.sqlite3"),
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["wal", "IMMEDIATE", "filesystem://"]


def test_with_a_stripe_key_the_offline_stripe_is_never_reachable(tmp_path):
    env = {**BASE_ENV, "DJANGO_SETTINGS_MODULE": "config.settings.local",
           "SQLITE_PATH": str(tmp_path / "db.sqlite3"),
           "STRIPE_TEST_SECRET_KEY": "sk_test_a_real_looking_key_0000000000"}  # fmt: skip
    probe = (
        "import stripe; from django.conf import settings; from djstripe.settings import "
        "djstripe_settings as d; print(settings.OFFLINE_STRIPE, "
        "hasattr(settings, 'STRIPE_API_HOST'), stripe.api_base, d.STRIPE_SECRET_KEY)"
    )
    result = manage("shell", "-c", probe, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1].split() == [
        "False", "False", "https://api.stripe.com", "sk_test_a_real_looking_key_0000000000"
    ]  # fmt: skip

    serving = subprocess.Popen(
        [sys.executable, "manage.py", "offline_stripe"],
        cwd=settings.BASE_DIR, env=env, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert "the offline Stripe stays off" in serving.stdout.readline()
    finally:
        serving.terminate()
        serving.wait(timeout=30)


def test_the_filesystem_broker_keeps_every_folder_under_var(tmp_path):
    """Without REDIS_URL, Celery's filesystem transport writes its queue, processed messages
    and exchange tables (control folder) under var/ only, never into the working directory."""
    env = {**BASE_ENV, "DJANGO_SETTINGS_MODULE": "config.settings.local",
           "SQLITE_PATH": str(tmp_path / "db.sqlite3")}  # fmt: skip
    probe = (
        "import json; from pathlib import Path; from kombu import Connection;"
        "from django.conf import settings;"
        "channel = Connection(settings.CELERY_BROKER_URL, transport_options="
        "settings.CELERY_BROKER_TRANSPORT_OPTIONS).default_channel;"
        "print(json.dumps({name: str(Path(getattr(channel, name)).resolve()) for name in "
        "('data_folder_in', 'data_folder_out', 'processed_folder', 'control_folder')}))"
    )
    result = manage("shell", "-v", "0", "-c", probe, env=env)
    assert result.returncode == 0, result.stderr
    folders = json.loads(result.stdout.strip().splitlines()[-1])
    var = settings.VAR_DIR.resolve()
    outside = {name: path for name, path in folders.items() if not Path(path).is_relative_to(var)}
    assert outside == {}
