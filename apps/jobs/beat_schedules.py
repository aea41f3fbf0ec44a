"""Beat schedules are rows of django-celery-beat's tables, created by data migrations; this
writes such a migration's operation once (older migrations spell it out)."""

from django.db import migrations


def schedule_jobs(schedules, *, description):
    """A migration operation adding `schedules` ([(name, task, minutes)]) to beat, each run
    expiring when its interval has passed (a run queued longer is stale); reversed, it
    removes them. Staff may change the intervals in the admin afterwards."""

    def create(apps, schema_editor):
        IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
        PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
        for name, task, minutes in schedules:
            every, _ = IntervalSchedule.objects.get_or_create(every=minutes, period="minutes")
            PeriodicTask.objects.get_or_create(
                name=name,
                defaults={"task": task, "interval": every, "description": description,
                          "expire_seconds": 60 * minutes},
            )  # fmt: skip

    def remove(apps, schema_editor):
        PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
        PeriodicTask.objects.filter(name__in=[name for name, _, _ in schedules]).delete()

    return migrations.RunPython(create, remove)
