"""Cost bases for purchase grants made before grants carried one (docs/revenue.md, "Grants
made before cost bases"): a purchase's grant gets what the purchase was paid (`amount_paid`);
a purchase grant without a purchase row (granted otherwise) gets credits × unit price, half
up. Only grants still at 0; in chunks of grant ids, the first rule one UPDATE per chunk.
The other grants are done by apps/periods/migrations/0005_grant_cost_bases.py. Reversing
it leaves the values."""

from django.db import migrations
from django.db.models import OuterRef, Subquery

from apps.core.allocation import cost_basis

CHUNK = 5000


def set_purchase_grant_cost_bases(apps, schema_editor):
    CreditGrant = apps.get_model("wallets", "CreditGrant")
    Purchase = apps.get_model("billing", "Purchase")
    pending = CreditGrant.objects.filter(source="purchase", basis_amount=0).order_by("pk")
    paid = Purchase.objects.filter(grant_id=OuterRef("pk"), amount_paid__gt=0)
    last = 0
    while True:
        ids = list(pending.filter(pk__gt=last).values_list("pk", flat=True)[:CHUNK])
        if not ids:
            return
        last = ids[-1]
        chunk = CreditGrant.objects.filter(pk__in=ids)
        chunk.filter(pk__in=paid.values("grant_id")).update(
            basis_amount=Subquery(paid.values("amount_paid")[:1])
        )
        linked = Purchase.objects.filter(grant_id__in=ids).values("grant_id")
        unlinked = chunk.exclude(pk__in=linked).filter(unit_price__gt=0)
        changed = []
        for grant in unlinked.only("pk", "amount", "unit_price", "currency"):
            grant.basis_amount = cost_basis(grant.amount, grant.unit_price, currency=grant.currency)
            changed.append(grant)
        CreditGrant.objects.bulk_update(changed, ["basis_amount"], batch_size=CHUNK)


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0007_purchase_credits_disputed"),
        ("wallets", "0008_grant_cost_basis_and_ledger_txid"),
    ]

    operations = [
        migrations.RunPython(set_purchase_grant_cost_bases, migrations.RunPython.noop)
    ]
