"""Beat schedules of the billing jobs, in the database (editable in the admin)."""

from django.db import migrations

SCHEDULES = [
    ("Suspend accounts past due", "periods.suspend_past_due_accounts", 15),
    ("Send overage charges to Stripe", "periods.send_overage_charges", 5),
    ("Auto-recharge", "periods.run_auto_recharges", 1),
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
                "description": "CreditDesk billing job (docs/billing.md).",
                "expire_seconds": 60 * minutes,
            },
        )


def remove(apps, schema_editor):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTask.objects.filter(name__in=[name for name, _, _ in SCHEDULES]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0001_purchase"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create, remove)]
