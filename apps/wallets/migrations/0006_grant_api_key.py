"""Grants made over the API record the key that made them, and their references move into the
API's own namespace, `api:<idempotency key>`, which no system reference (period:…, overage:…,
Stripe ids) may use: an API key can no longer take the reference of a renewal.

Grants the API made before this have a reference and a staff source (promo, manual, trial):
only the API gives such grants a reference (the admin's have none; the system's have other
sources). Their references move into the namespace, so that a retry with the same
idempotency key still replays them; which key made them was not recorded."""

import django.db.models.deletion
from django.db import migrations, models
from django.db.models import Value
from django.db.models.functions import Concat

API_REFERENCE_PREFIX = "api:"
API_SOURCES = ["promo", "manual", "trial"]


def namespace_api_references(apps, schema_editor):
    CreditGrant = apps.get_model("wallets", "CreditGrant")
    CreditGrant.objects.filter(source__in=API_SOURCES, reference__isnull=False).exclude(
        reference__startswith=API_REFERENCE_PREFIX
    ).update(reference=Concat(Value(API_REFERENCE_PREFIX), "reference"))


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0005_billing_state"),
        ("wallets", "0005_overage_source"),
    ]

    operations = [
        migrations.AddField(
            model_name="creditgrant",
            name="api_key",
            field=models.ForeignKey(
                blank=True,
                help_text="The API key that made this grant; empty for grants made otherwise.",
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to="accounts.apikey",
                verbose_name="API key",
            ),
        ),
        migrations.AlterField(
            model_name="creditgrant",
            name="reference",
            field=models.CharField(
                blank=True,
                help_text="Idempotency handle of whatever created it (checkout session, period, key).",
                max_length=300,
                null=True,
            ),
        ),
        migrations.RunPython(namespace_api_references, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name="creditgrant",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    ("api_key__isnull", True),
                    ("reference__isnull", True),
                    ("reference__startswith", "api:"),
                    _connector="OR",
                ),
                name="grant_api_reference_in_api_namespace",
            ),
        ),
    ]
