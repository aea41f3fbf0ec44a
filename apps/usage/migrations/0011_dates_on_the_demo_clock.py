"""A usage event's occurred_at and created_at take their default from the demo clock
(apps/core/clock.py). A Python-side default only, so state only: on SQLite an AlterField
would rebuild the table."""

import apps.core.clock
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('usage', '0010_sql_functions'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name='usageevent',
                    name='created_at',
                    field=models.DateTimeField(default=apps.core.clock.now),
                ),
                migrations.AlterField(
                    model_name='usageevent',
                    name='occurred_at',
                    field=models.DateTimeField(default=apps.core.clock.now),
                ),
            ],
        ),
    ]
