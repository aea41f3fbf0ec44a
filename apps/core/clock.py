"""The deployment's clock: real time, moved forward by an offset in a demo.

Every product decision about time (periods, expiry, grants, ledger entries, usage, jobs) reads
`now()` here, never `django.utils.timezone.now()`, so that `manage.py advance_clock` can show
a renewal, rollover or breakage without waiting a month. The offset lives in the file named by
the DEMO_CLOCK_FILE setting, which only the local and test settings set: under production
settings `now()` is plain real time and nothing can move it.

Every process (web, worker, beat, commands) sees a moved clock within a second, without a
restart: a process looks at the file (one stat(), and a read only when it changed) at most
once a second, and at once after it moved the clock itself. Not on every call: stat() is a
system call, which lets go of the GIL, and at 16 threads consuming that handover alone cost
the consume path about a tenth of its rate (bench/RESULTS.md). No database query either, so
the consume hot path keeps its budget. Audit stamps of when something
really happened (auto_now_add `created_at`, a job's `finished_at`) and times compared with
Stripe's stay real time.
"""

import contextlib
import json
import os
import time
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

ZERO = timedelta(0)
# How long a process trusts the offset it last read before it looks at the file again.
RECHECK_SECONDS = 1.0

# (path, time.monotonic() after which to look again, (inode, mtime, size) of the file last
# read or None, the offset it held).
_NOTHING_SEEN = (None, 0.0, None, ZERO)
_seen = _NOTHING_SEEN


class ClockFixed(Exception):
    """The clock cannot be moved under these settings (production)."""


def now():
    """The deployment's current time: real time plus the demo offset (none in production)."""
    return timezone.now() + offset()


def offset():
    """How far the demo clock is ahead of real time (zero unless it was moved)."""
    global _seen
    path = getattr(settings, "DEMO_CLOCK_FILE", None)
    if not path:
        return ZERO
    seen_path, look_again_at, seen_key, ahead = _seen
    looked_at = time.monotonic()
    if seen_path == path and looked_at < look_again_at:
        return ahead
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        key, ahead = None, ZERO
    else:
        key = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        if seen_path != path or seen_key != key:
            ahead = _read(path)
    _seen = (path, looked_at + RECHECK_SECONDS, key, ahead)
    return ahead


def _read(path):
    try:
        with open(path, encoding="utf-8") as file:
            return timedelta(seconds=float(json.load(file)["offset_seconds"]))
    except FileNotFoundError:
        return ZERO


def is_movable():
    return bool(getattr(settings, "DEMO_CLOCK_FILE", None))


def advance(*, by=None, to=None):
    """Move the clock forward `by` a positive timedelta or `to` a later aware datetime.
    Returns the new now(). Never backwards: a demo's records would then lie in the future."""
    global _seen
    path = _movable_path()
    _seen = _NOTHING_SEEN  # from the file as it is, not as this process last looked
    real, ahead = timezone.now(), offset()
    if by is not None:
        moved = ahead + by
    elif to is not None and to.tzinfo is not None:
        moved = to - real
    else:
        raise ValueError("Give `by` or an aware `to`.")
    if moved <= ahead:
        raise ValueError(
            f"The clock only moves forward: it is already {real + ahead:%Y-%m-%d %H:%M:%S %Z}."
        )
    _write(path, moved)
    return now()


def reset():
    """Back to real time (the tests reset before and after each test)."""
    global _seen
    path = _movable_path()
    with contextlib.suppress(FileNotFoundError):
        os.remove(path)
    _seen = _NOTHING_SEEN  # this process sees its own move at once


def _movable_path():
    if not is_movable():
        raise ClockFixed(
            "The clock is real time under these settings (no DEMO_CLOCK_FILE): it moves "
            "only in a demo or in tests (config.settings.local, config.settings.test)."
        )
    return settings.DEMO_CLOCK_FILE


def _write(path, moved):
    """Write atomically (a new file replaces the old), so a reader never sees half a file
    and every reader's stat() sees a change."""
    global _seen
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    temporary = f"{path}.{os.getpid()}.tmp"
    with open(temporary, "w", encoding="utf-8") as file:
        json.dump(
            {"offset_seconds": moved.total_seconds(), "written_at": timezone.now().isoformat()},
            file,
        )
    os.replace(temporary, path)
    _seen = _NOTHING_SEEN  # this process sees its own move at once
