from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.db.models import Q

from apps.core.fields import credit_field, money_field


class SimulationRun(models.Model):
    """One what-if: a draft catalog replayed over a past range for a set of accounts. Kept
    with its results so it can be shared by its URL; the draft is kept as it was sent."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"
        CANCELED = "canceled", "Canceled"

    FINISHED = (Status.DONE, Status.FAILED, Status.CANCELED)

    title = models.CharField(max_length=200, help_text="What is being tried, in a few words.")
    draft = models.TextField(help_text="The draft catalog file (the import_catalog format).")
    draft_filename = models.CharField(max_length=200, default="draft.yaml")
    contracts = models.TextField(
        blank=True,
        help_text="Draft contracts as they were sent: a mapping of account external id to a "
        "contract body (docs/contracts.md).",
    )
    changes = models.JSONField(default=list, help_text="What the draft changes, line by line.")
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    selection = models.JSONField(default=dict, help_text="How the accounts were chosen.")
    account_ids = models.JSONField(default=list)
    chunk_size = models.PositiveIntegerField(default=1000, help_text="Accounts per chunk.")
    chunks_done = models.JSONField(default=list, help_text="The chunks whose lines are in.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    accounts_done = models.PositiveIntegerField(default=0)
    cancel_requested = models.BooleanField(default=False)
    totals = models.JSONField(default=dict, encoder=DjangoJSONEncoder)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
        related_name="+",
    )  # fmt: skip
    created_at = models.DateTimeField()
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(
        null=True, blank=True, help_text="When its worker last reported progress."
    )
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.CheckConstraint(
                condition=Q(starts_at__lt=models.F("ends_at")), name="simulation_range_ordered"
            ),
        ]

    def __str__(self):
        return self.title

    @property
    def accounts_total(self):
        return len(self.account_ids)

    @property
    def chunks(self):
        return -(-len(self.account_ids) // self.chunk_size)


class SimulationLine(models.Model):
    """One account's figures, real and under the draft (apps/simulation/figures.Figures,
    as plain values), with the changes a table sorts by."""

    run = models.ForeignKey(SimulationRun, on_delete=models.CASCADE, related_name="lines")
    account = models.ForeignKey(
        "accounts.Account", on_delete=models.CASCADE, related_name="+", db_index=False
    )
    real = models.JSONField(encoder=DjangoJSONEncoder)
    draft = models.JSONField(encoder=DjangoJSONEncoder)
    charged_change = credit_field(validators=[], help_text="Draft credits charged - real.")
    change_percent = models.DecimalField(max_digits=12, decimal_places=1, null=True)
    refused = models.PositiveIntegerField(default=0, help_text="Requests the draft refuses.")
    currency = models.CharField(max_length=3, blank=True)
    revenue_change = money_field(
        default=0, validators=[], help_text="Draft revenue - real, in `currency`."
    )

    class Meta:
        ordering = ["run", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["run", "account"], name="simulation_line_unique"),
        ]

    def __str__(self):
        return f"{self.run}: account #{self.account_id}"
