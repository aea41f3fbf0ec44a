"""The period jobs' beat schedules, in the database (DatabaseScheduler): staff can change
the intervals or disable a job in the admin (Periodic tasks) without a deploy."""

from django.db import migrations

SCHEDULES = [
    # (name, task, every minutes)
    ("Renew due subscriptions", "periods.renew_due_subscriptions", 1),
    ("Release expired reservations", "periods.release_expired_reservations", 1),
    ("Expire grants", "periods.expire_grants", 5),
]


def create(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    for name, task, minutes in SCHEDULES:
        interval, _ = IntervalSchedule.objects.get_or_create(every=minutes, period="minutes")
        PeriodicTask.objects.get_or_create(
            name=name,
            defaults={
                "task": task,
                "interval": interval,
                "description": "CreditDesk period job (docs/periods.md).",
                "expire_seconds": 60 * minutes,  # a run queued longer than its interval is stale
            },
        )


def remove(apps, schema_editor):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTask.objects.filter(name__in=[name for name, _, _ in SCHEDULES]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("periods", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create, remove)]
