"""A real worker on the real broker (Redis in CI): the plumbing later jobs stand on."""

import pytest
from django_celery_beat.schedulers import DatabaseScheduler

from apps.jobs.beat import SingleBeatScheduler
from config.celery import app, ping
from tests.workers import real_worker


@pytest.mark.redis
@pytest.mark.django_db  # the worker's Django fixup checks this thread's connection per task
def test_a_task_round_trips_through_a_real_worker():
    with real_worker():
        assert ping.delay().get(timeout=20) == "pong"


def test_beat_uses_the_database_scheduler_behind_the_beat_lock(settings):
    assert settings.CELERY_BEAT_SCHEDULER == "apps.jobs.beat:SingleBeatScheduler"
    assert issubclass(SingleBeatScheduler, DatabaseScheduler)
    assert app.conf.beat_scheduler == settings.CELERY_BEAT_SCHEDULER
