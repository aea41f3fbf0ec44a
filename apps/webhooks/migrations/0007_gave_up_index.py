"""An index of the deliveries that gave up, by their last attempt: the metrics count those of
the last hour on every scrape (apps/webhooks/metrics.py), without reading the deliveries that
succeeded. Built CONCURRENTLY on PostgreSQL (not atomic): deliveries go on being written
while it is built."""

from django.db import migrations, models

INDEX = models.Index(
    condition=models.Q(status="failed"), fields=["last_attempt_at"], name="webhook_delivery_gave_up"
)


def add_index(apps, schema_editor):
    model = apps.get_model("webhooks", "WebhookDelivery")
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {INDEX.name} "
            f"ON {model._meta.db_table} (last_attempt_at) WHERE status = 'failed'"
        )
    else:
        schema_editor.add_index(model, INDEX)


def remove_index(apps, schema_editor):
    schema_editor.remove_index(apps.get_model("webhooks", "WebhookDelivery"), INDEX)


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("webhooks", "0006_endpoints_for_every_account_and_rotation"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunPython(add_index, remove_index)],
            state_operations=[migrations.AddIndex(model_name="webhookdelivery", index=INDEX)],
        ),
    ]
