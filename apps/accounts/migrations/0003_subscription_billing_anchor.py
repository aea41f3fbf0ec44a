import django.db.models.deletion
from django.db import migrations, models
from django.db.models import F

ANCHOR_HELP = (
    "Periods are counted from here, so that month ends do not drift (Jan 31 → Feb 28 → Mar 31)."
)


def anchor_at_period_start(apps, schema_editor):
    for name in ("Subscription", "HistoricalSubscription"):
        apps.get_model("accounts", name).objects.update(billing_anchor=F("current_period_start"))


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0002_api_key_rate_limit"),
        ("catalog", "0002_overage_policy_labels"),
    ]

    operations = [
        migrations.AddField(
            model_name="subscription",
            name="billing_anchor",
            field=models.DateTimeField(null=True, help_text=ANCHOR_HELP),
        ),
        migrations.AddField(
            model_name="historicalsubscription",
            name="billing_anchor",
            field=models.DateTimeField(null=True, help_text=ANCHOR_HELP),
        ),
        migrations.RunPython(anchor_at_period_start, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="subscription",
            name="billing_anchor",
            field=models.DateTimeField(help_text=ANCHOR_HELP),
        ),
        migrations.AlterField(
            model_name="historicalsubscription",
            name="billing_anchor",
            field=models.DateTimeField(help_text=ANCHOR_HELP),
        ),
        migrations.AddField(
            model_name="subscription",
            name="scheduled_plan",
            field=models.ForeignKey(
                blank=True,
                help_text="Takes over at the next renewal (a change at period end, e.g. a downgrade).",
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to="catalog.plan",
            ),
        ),
        migrations.AddField(
            model_name="historicalsubscription",
            name="scheduled_plan",
            field=models.ForeignKey(
                blank=True,
                db_constraint=False,
                help_text="Takes over at the next renewal (a change at period end, e.g. a downgrade).",
                null=True,
                on_delete=django.db.models.deletion.DO_NOTHING,
                related_name="+",
                to="catalog.plan",
            ),
        ),
    ]
