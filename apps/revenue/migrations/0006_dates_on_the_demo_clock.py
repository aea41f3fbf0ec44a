"""A ratable fee's and a cash refund's created_at take their default from the demo clock
(apps/core/clock.py). A Python-side default only, so state only: on SQLite an AlterField
would rebuild the tables."""

import apps.core.clock
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('revenue', '0005_cash_refunds'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name='cashrefund',
                    name='created_at',
                    field=models.DateTimeField(default=apps.core.clock.now),
                ),
                migrations.AlterField(
                    model_name='ratablefee',
                    name='created_at',
                    field=models.DateTimeField(default=apps.core.clock.now),
                ),
            ],
        ),
    ]
