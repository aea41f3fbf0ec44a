from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError
from django.utils.dateparse import parse_datetime

from apps.core import clock

FIXED = (
    "The clock cannot be moved under these settings: it is real time in production. "
    "advance_clock works under config.settings.local (make run) and config.settings.test."
)


class Command(BaseCommand):
    help = (
        "Move the demo clock forward (local and test settings only; refused in production), "
        "so renewals, rollover, expiry and trials come due without waiting. Every process sees "
        "it within a second; then `run_period_jobs` (or beat) does what is due. Without an "
        "option: show the clock."
    )

    def add_arguments(self, parser):
        which = parser.add_mutually_exclusive_group()
        which.add_argument("--days", type=int, help="Move forward this many days.")
        which.add_argument("--to", help="Move forward to this ISO 8601 moment with a zone.")
        which.add_argument(
            "--reset",
            action="store_true",
            help="Back to real time. What was written at the moved time stays dated then.",
        )

    def handle(self, *args, days=None, to=None, reset=False, **options):
        if not clock.is_movable():
            raise CommandError(FIXED)
        try:
            if reset:
                clock.reset()
            elif days is not None:
                if days < 1:
                    raise CommandError("--days must be at least 1: the clock only moves forward.")
                clock.advance(by=timedelta(days=days))
            elif to is not None:
                clock.advance(to=_moment(to))
        except ValueError as error:
            raise CommandError(str(error)) from None
        self.stdout.write(_shown())


def _moment(text):
    moment = parse_datetime(text)
    if moment is None or moment.tzinfo is None:
        raise CommandError(f"--to {text!r}: give an ISO 8601 time with a zone.")
    return moment


def _shown():
    ahead = clock.offset()
    now = f"{clock.now():%Y-%m-%d %H:%M:%S %Z}"
    if not ahead:
        return f"Clock: {now} (real time)"
    return f"Clock: {now} ({_words(ahead)} ahead of real time)"


def _words(ahead):
    days, seconds = ahead.days, ahead.seconds
    parts = [f"{days} day{'s' if days != 1 else ''}"] if days else []
    if seconds >= 60 or not parts:
        parts.append(f"{seconds // 3600}h{seconds % 3600 // 60:02d}m")
    return " ".join(parts)
