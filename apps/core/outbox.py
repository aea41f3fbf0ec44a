"""Publishing Celery tasks without letting the broker take requests or jobs down.

Every task CreditDesk sends goes through `publish` / `publish_many`:

- inside a transaction, the task is written to the outbox (OutboxTask) in that transaction
  and published once it commits (`on_commit`); the row is deleted when the broker took it;
- outside one, it is published at once and written to the outbox only if that fails.

A publish waits at most TASK_PUBLISH_TIMEOUT per step (settings: a try, a reconnect, a retry),
never raises, and after a failure this process stops trying the same broker for
BROKER_PAUSE_SECONDS (the outbox keeps what is due). `publish_outbox`, the sweeper (a scheduled
job: apps/jobs/jobs.py), sends what the outbox holds. A task may therefore run twice
(published, then the process died before deleting its row, or the sweeper sent a row whose
after-commit publish was under way); every task here takes ids and is idempotent, as
Celery's at-least-once delivery requires anyway."""

import hashlib
import json
import logging
import time

from django.db import transaction
from django.db.models import F

from config.celery import app as celery_app

from .models import OutboxTask

log = logging.getLogger(__name__)

BROKER_PAUSE_SECONDS = 10
RETRY_POLICY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.2}
_paused_until = {}  # broker URL -> monotonic time before which this process does not try it


def publish(task, *args, **kwargs):
    """Send Celery task `task` (its name) with ids as arguments; see the module's docstring."""
    publish_many([(task, list(args), kwargs)])


def publish_many(calls):
    """`calls`: `[(task name, args list, kwargs dict), …]`, published in this order."""
    rows = [
        OutboxTask(key=_key(task, args, kwargs), task=task, args=list(args), kwargs=kwargs or {})
        for task, args, kwargs in calls
    ]
    if not rows:
        return
    if transaction.get_connection().in_atomic_block:
        OutboxTask.objects.bulk_create(rows, ignore_conflicts=True)
        transaction.on_commit(lambda: _publish_and_forget(rows), robust=True)
    else:
        failed, error = _send_all(rows)
        if error is not None:
            failed[0].attempts, failed[0].last_error = 1, _describe(error)
        _keep(failed)


def publish_outbox(*, counts, on_chunk=None, chunk_size=100):
    """The sweeper: publish what the outbox holds, oldest first, a chunk per transaction
    (rows locked with SKIP LOCKED, so two sweepers never send the same row). Stops at the
    first failure (the broker is down: the rest would fail too), recorded on that row.
    Counts in `counts` (the job's JobCounts: `published`, `chunks`, `fail()`)."""
    while True:
        with transaction.atomic(durable=True):
            rows = list(
                OutboxTask.objects.select_for_update(skip_locked=True).order_by("pk")[:chunk_size]
            )
            if not rows:
                break
            sent, error = [], None
            for row in rows:
                try:
                    _send(row)
                except Exception as failure:  # noqa: BLE001 - kept, counted, retried next run
                    error = failure
                    _record_failure([row], failure)
                    counts.fail(f"publish {row}", failure)
                    break
                sent.append(row.pk)
            OutboxTask.objects.filter(pk__in=sent).delete()
            counts.published += len(sent)
            counts.chunks += 1
        if on_chunk is not None:
            on_chunk(counts)
        if error is not None:
            break
    return counts


def _key(task, args, kwargs):
    text = json.dumps([task, list(args), kwargs or {}], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _broker_url():
    return celery_app.conf.broker_url


def _send(row):
    celery_app.send_task(
        row.task, args=row.args, kwargs=row.kwargs, ignore_result=True,
        retry=True, retry_policy=RETRY_POLICY,
    )  # fmt: skip
    _paused_until.pop(_broker_url(), None)


def _send_all(rows):
    """Publish `rows` in order. Returns `(rows not published, the error or None)`: from the
    first failure on, or all of them (no error) while this broker is paused after one."""
    if time.monotonic() < _paused_until.get(_broker_url(), 0):
        return rows, None
    for index, row in enumerate(rows):
        try:
            _send(row)
        except Exception as error:  # noqa: BLE001 - the outbox keeps it
            _paused_until[_broker_url()] = time.monotonic() + BROKER_PAUSE_SECONDS
            log.warning("could not publish %s (%s); the outbox keeps it", row, error)
            return rows[index:], error
    return [], None


def _publish_and_forget(rows):
    """After commit: publish the rows written in the transaction, delete those the broker took."""
    failed, error = _send_all(rows)
    try:
        published = rows[: len(rows) - len(failed)]
        if published:
            OutboxTask.objects.filter(key__in=[row.key for row in published]).delete()
        if error is not None:
            _record_failure(failed[:1], error)
    except Exception:  # a row left behind is only published again
        log.warning("could not update the outbox after publishing", exc_info=True)


def _keep(rows):
    """Outside a transaction: write what could not be published (once per key)."""
    if not rows:
        return
    try:
        OutboxTask.objects.bulk_create(rows, ignore_conflicts=True)
    except Exception:  # the caller goes on; its own sweep finds the work again
        log.error("could not keep unpublished tasks in the outbox: %s", rows, exc_info=True)


def _record_failure(rows, error):
    OutboxTask.objects.filter(key__in=[row.key for row in rows]).update(
        attempts=F("attempts") + 1, last_error=_describe(error)
    )


def _describe(error):
    return f"{type(error).__name__}: {error}"[:500]
