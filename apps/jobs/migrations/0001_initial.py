"""JobRun, moved here from the periods app with its rows (periods/0004 renamed the table):
only the state is created. Its content type moves too, so the permissions on it, and the
staff groups holding them (core/0003: Finance and Support view job runs), stay."""

from django.db import migrations, models


def move_content_type(apps, schema_editor, *, source, target):
    ContentType = apps.get_model("contenttypes", "ContentType")
    if not ContentType.objects.filter(app_label=source, model="jobrun").exists():
        return  # a database that never had JobRun where it is moved from
    # One made for `target` by a migration that created the permissions of every model
    # before this one ran holds nothing yet: the moved one, with its grants, replaces it.
    ContentType.objects.filter(app_label=target, model="jobrun").delete()
    ContentType.objects.filter(app_label=source, model="jobrun").update(app_label=target)


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("periods", "0004_jobrun_moves_to_jobs"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="JobRun",
                    fields=[
                        ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                        ("job", models.CharField(max_length=64)),
                        ("trigger", models.CharField(help_text="beat, command or admin: who started the run.", max_length=32)),
                        ("status", models.CharField(choices=[("running", "Running"), ("succeeded", "Succeeded"), ("failed", "Failed")], default="running", max_length=16)),
                        ("as_of", models.DateTimeField(help_text="The moment the run treated as now.")),
                        ("started_at", models.DateTimeField(auto_now_add=True)),
                        ("finished_at", models.DateTimeField(blank=True, null=True)),
                        ("counts", models.JSONField(blank=True, default=dict)),
                        ("error", models.TextField(blank=True)),
                        ("task_id", models.CharField(blank=True, max_length=64)),
                    ],
                    options={
                        "ordering": ["-started_at"],
                        "indexes": [models.Index(fields=["job", "-started_at"], name="jobrun_job_newest")],
                    },
                ),
            ],
        ),
        migrations.RunPython(
            lambda apps, editor: move_content_type(apps, editor, source="periods", target="jobs"),
            lambda apps, editor: move_content_type(apps, editor, source="jobs", target="periods"),
        ),
    ]
