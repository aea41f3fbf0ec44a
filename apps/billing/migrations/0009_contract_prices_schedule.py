"""The beat schedule of the job that bills contracts at Stripe (apps/billing/contract_prices.py):
hourly, as each renewal gives a subscription a new next period to price."""

from django.db import migrations

from apps.jobs.beat_schedules import schedule_jobs


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0008_purchase_grant_cost_bases"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [
        schedule_jobs(
            [("Bill contracts at Stripe", "periods.bill_contracts_at_stripe", 60)],
            description="CreditDesk: Stripe-backed subscriptions on their contract's price "
            "(docs/contracts.md, Billed through Stripe).",
        )
    ]
