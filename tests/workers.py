"""A real Celery worker on the real broker, for the tests that run a job through one."""

from celery.contrib.testing.worker import start_worker

from config.celery import app


def empty_queue():
    """Drop what this xdist process's queue holds: a task an earlier test queued (a
    contract's billing job, say) is not the next test's to run."""
    app.control.purge()


def real_worker(*, purge=True):
    """A solo worker on this xdist process's queue, emptied first unless the test queued
    what the worker is to run (then it calls empty_queue() before queueing). A worker's
    thread commits through a connection of its own, outside a test's rollback: what a stale
    task wrote would stay for the next tests to find."""
    if purge:
        empty_queue()
    return start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10)
