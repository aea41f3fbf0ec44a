"""The chunk runner every sweeping job uses (renewal, grant expiry, reservation release): a
job is killed at any point and run again, or runs twice at once, and still does each row's
work once.

- A chunk is one durable transaction: it reads the next `chunk_size` keys that are due, in
  key order, and locks their rows with SKIP LOCKED: a row another transaction holds (a
  second copy of the job, a plan change, a consume) is left to that one.
- A second pass then waits for what is still due (held when the first pass came by).
- A chunk that fails is retried one key per transaction, so one bad row costs only itself:
  counted in `failures` (and `errors`), not retried again in this run.

What a row is and how it is locked is the caller's: the runner knows keys and querysets."""

from celery.exceptions import SoftTimeLimitExceeded
from django.db import transaction


def run_in_chunks(*, due, lock, work, counts, chunk_size, on_chunk=None, failed=None,
                  key="pk", label="row"):  # fmt: skip
    """Run `work(lock(keys, skip_locked=…))` over the `key` values of `due` (a queryset of
    what is left to do), a chunk of keys per transaction. `lock` returns what `work` takes:
    the rows of those keys, locked; `work` writes them in the same transaction and counts
    in `counts` (JobCounts). `failed`: keys that failed alone, shared by copies running at
    once (`in_parallel`). `on_chunk(counts)` runs after each chunk."""
    failed = set() if failed is None else failed
    for skip_locked in (True, False):
        # A copy of `failed` in each query: another worker may add to it meanwhile.
        if not skip_locked and not due.exclude(**{f"{key}__in": list(failed)}).exists():
            return
        after = None
        while True:
            before = counts.copy()
            keys = []
            try:
                with transaction.atomic(durable=True):
                    keys = _next_keys(due, key, after, chunk_size, failed)
                    if not keys:
                        break
                    work(lock(keys, skip_locked=skip_locked))
            except Exception as error:  # a bad row must not stop everyone else's
                if not keys or isinstance(error, SoftTimeLimitExceeded):
                    raise
                counts.restore(before)  # the chunk wrote nothing: count it again singly
                failed |= _one_by_one(keys, lock, work, counts, label, skip_locked)
            after = keys[-1]
            counts.chunks += 1
            if on_chunk is not None:
                on_chunk(counts)


def _next_keys(due, key, after, limit, failed):
    pending = due.exclude(**{f"{key}__in": list(failed)})
    if after is not None:
        pending = pending.filter(**{f"{key}__gt": after})
    return list(pending.order_by(key).values_list(key, flat=True).distinct()[:limit])


def _one_by_one(keys, lock, work, counts, label, skip_locked):
    """Retry a failed chunk one key per transaction; returns the keys that fail alone."""
    failed = set()
    for one in keys:
        before = counts.copy()
        try:
            with transaction.atomic(durable=True):
                work(lock([one], skip_locked=skip_locked))
        except Exception as error:  # counted and reported; the run goes on
            if isinstance(error, SoftTimeLimitExceeded):
                raise
            counts.restore(before)
            counts.fail(f"{label} {one}", error)
            failed.add(one)
    return failed
