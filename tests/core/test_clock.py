"""The demo clock (apps/core/clock.py, `manage.py advance_clock`): forward only, seen by every
process within a second, free on the hot path, and fixed to real time under production settings."""

import os
import time
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.core import clock
from apps.usage.models import UsageEvent
from apps.wallets.models import CreditGrant, LedgerEntry
from tests.commands import PRODUCTION_ENV, manage

DAY = timedelta(days=1)


def advance_clock(*args):
    out = StringIO()
    call_command("advance_clock", *args, stdout=out)
    return out.getvalue()


def ahead():
    """How far the clock is ahead of real time, to the second."""
    return timedelta(seconds=round((clock.now() - timezone.now()).total_seconds()))


def test_every_test_starts_on_real_time():
    """Whatever test this process ran before (tests/conftest.py resets the clock)."""
    assert clock.offset() == timedelta(0)
    assert "(real time)" in advance_clock()


def test_days_moves_the_clock_forward_and_adds_up():
    assert "31 days ahead of real time" in advance_clock("--days", "31")
    assert ahead() == 31 * DAY
    advance_clock("--days", "2")
    assert ahead() == 33 * DAY


def test_to_moves_the_clock_to_a_later_moment_which_then_keeps_running():
    target = (timezone.now() + 40 * DAY).replace(microsecond=0)
    advance_clock("--to", target.isoformat())
    assert target <= clock.now() < target + timedelta(seconds=30)


def test_the_clock_never_moves_backwards():
    advance_clock("--days", "10")
    for args in (["--days", "0"], ["--days", "-3"], ["--to", timezone.now().isoformat()],
                 ["--to", (timezone.now() + 5 * DAY).isoformat()]):  # fmt: skip
        with pytest.raises(CommandError, match="only moves forward"):
            advance_clock(*args)
    assert ahead() == 10 * DAY
    with pytest.raises(CommandError, match="with a zone"):
        advance_clock("--to", "2099-01-01T00:00:00")


def test_reset_brings_back_real_time():
    advance_clock("--days", "31")
    assert "(real time)" in advance_clock("--reset")
    assert clock.offset() == timedelta(0)
    assert ahead() == timedelta(0)


def test_another_process_sees_the_moved_clock_and_moves_it_for_this_one_within_a_second():
    """The web, the worker, beat and commands are separate processes; none restarts."""
    advance_clock("--days", "5")
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.test"}
    probe = "from apps.core import clock; print(clock.offset().days)"
    seen = manage("shell", "-v", "0", "-c", probe, env=env)
    assert seen.returncode == 0, seen.stderr
    assert seen.stdout.split()[-1] == "5"
    assert ahead() == 5 * DAY
    moved = manage("advance_clock", "--days", "7", env=env)
    assert moved.returncode == 0, moved.stderr
    time.sleep(clock.RECHECK_SECONDS)
    assert ahead() == 12 * DAY


def test_a_process_looks_at_the_clock_file_at_most_once_a_second(settings):
    """Not a system call per consume: one lets go of the GIL, which costs threads dearly."""
    advance_clock("--days", "5")
    assert ahead() == 5 * DAY
    os.remove(settings.DEMO_CLOCK_FILE)  # as another process's reset would
    assert ahead() == 5 * DAY
    time.sleep(clock.RECHECK_SECONDS)
    assert ahead() == timedelta(0)


def test_reading_the_clock_costs_no_query(db):
    advance_clock("--days", "1")
    with CaptureQueriesContext(connection) as queries:
        for _ in range(100):
            clock.now()
    assert queries.captured_queries == []


def test_dates_that_decide_periods_and_expiry_default_to_the_clock():
    advance_clock("--days", "31")
    for row, field in [(CreditGrant(), "effective_at"), (LedgerEntry(), "created_at"),
                       (UsageEvent(), "occurred_at")]:  # fmt: skip
        assert getattr(row, field) - timezone.now() > 30 * DAY, field


def test_without_a_clock_file_the_clock_is_real_time_and_cannot_move(settings):
    advance_clock("--days", "31")
    settings.DEMO_CLOCK_FILE = None  # as under production settings
    assert clock.offset() == timedelta(0)
    assert ahead() == timedelta(0)
    with pytest.raises(CommandError, match="real time in production"):
        advance_clock("--days", "1")
    with pytest.raises(clock.ClockFixed):
        clock.reset()


def test_production_settings_refuse_to_move_the_clock():
    for args in (["--days", "31"], ["--to", "2099-01-01T00:00:00Z"], ["--reset"], []):
        result = manage("advance_clock", *args, env=PRODUCTION_ENV)
        assert result.returncode != 0, result.stdout
        assert "cannot be moved under these settings" in result.stderr
    probe = "from django.conf import settings; print(settings.DEMO_CLOCK_FILE)"
    result = manage("shell", "-v", "0", "-c", probe, env=PRODUCTION_ENV)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-1] == "None"
