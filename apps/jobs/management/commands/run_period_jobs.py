from django.core.management.base import BaseCommand, CommandError
from django.utils.dateparse import parse_datetime

from apps.core import clock
from apps.jobs.registry import JOBS, run_job


class Command(BaseCommand):
    help = (
        "Run every scheduled job once, in their order (renewal first, the outbox sweeper "
        "last), as beat would, and print what each did. Safe to run beside the scheduled "
        "jobs and to run again."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--now",
            help="Treat this past ISO 8601 moment as now (e.g. to replay a missed run as it "
            "would have been: 2026-11-01T00:00:00Z).",
        )
        parser.add_argument("--job", choices=list(JOBS), help="Run only this job.")
        parser.add_argument("--chunk-size", type=int, help="Rows per transaction.")

    def handle(self, *args, now=None, job=None, chunk_size=None, **options):
        moment = None
        if now:
            moment = parse_datetime(now)
            if moment is None or moment.tzinfo is None:
                raise CommandError(f"--now {now!r}: give an ISO 8601 time with a zone.")
            if moment > clock.now():
                raise CommandError(
                    "--now is in the future: that would end periods early and grant credits "
                    "ahead of time, which cannot be undone. Give a past moment."
                )
        if chunk_size is not None and chunk_size < 1:
            raise CommandError("--chunk-size must be at least 1.")
        for name in [job] if job else JOBS:
            run = run_job(job=name, trigger="command", now=moment, chunk_size=chunk_size)
            shown = {k: v for k, v in run.counts.items() if k not in ("errors", "chunks")}
            counts = ", ".join(f"{k}={v}" for k, v in shown.items()) or "nothing due"
            line = f"{name}: {run.status} in {run.duration.total_seconds():.2f}s ({counts})"
            self.stdout.write(self.style.SUCCESS(line) if not run.counts.get("failures") else line)
            for error in run.counts.get("errors", []):
                self.stderr.write(f"  {error}")
