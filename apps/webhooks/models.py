"""Outgoing webhooks: endpoints the company registers (for one account, or for every
account), the events CreditDesk sends them (signed; docs/webhooks.md), each delivery's log,
and the low-balance alert state that makes `balance.low` fire once per crossing."""

import secrets

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

from .destinations import RefusedDestination, check_url

EVENT_TYPES = [
    ("credits.granted", "credits.granted — a grant added credits"),
    ("credits.expired", "credits.expired — credits expired unused"),
    ("period.renewed", "period.renewed — a subscription entered a new period"),
    ("trial.ending", "trial.ending — a trial ends in three days or less"),
    ("trial.ended", "trial.ended — a trial converted to the paid plan or ended without"),
    ("balance.low", "balance.low — available credits fell to the threshold"),
    ("balance.depleted", "balance.depleted — available credits fell to zero"),
    ("auto_recharge.succeeded", "auto_recharge.succeeded — the saved card bought a pack"),
    ("auto_recharge.failed", "auto_recharge.failed — the card was declined or the cap reached"),
    ("purchase.mismatch", "purchase.mismatch — Stripe was paid another amount than sold"),
]


def new_secret():
    return f"whsec_{secrets.token_urlsafe(32)}"


def new_event_id():
    return f"evt_{secrets.token_hex(12)}"


class WebhookEndpoint(models.Model):
    account = models.ForeignKey(
        "accounts.Account",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="webhook_endpoints",
        help_text="The account whose events it receives; empty: every account's.",
    )
    url = models.URLField(max_length=500, help_text="HTTPS URL that receives POSTed events.")
    secret = models.CharField(
        max_length=64,
        default=new_secret,
        help_text="Signs every delivery (HMAC-SHA256); give it to the receiver.",
    )
    previous_secret = models.CharField(
        max_length=64,
        blank=True,
        editable=False,
        help_text="The secret before the last rotation: deliveries are signed with it too "
        "until previous_secret_expires_at, so the receiver can switch without a gap.",
    )
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True, editable=False)
    event_types = models.JSONField(
        default=list, blank=True, help_text="Events to send; empty for every event."
    )
    active = models.BooleanField(default=True)
    description = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["account", "url"]

    def __str__(self):
        return f"{self.account or 'every account'} → {self.url}"

    def signing_secrets(self, now):
        """The secrets a delivery is signed with now: the current one, and the one before the
        last rotation while its overlap lasts."""
        expires = self.previous_secret_expires_at
        if self.previous_secret and expires is not None and now < expires:
            return [self.secret, self.previous_secret]
        return [self.secret]

    def clean(self):
        """Refuse a URL webhooks may not be sent to (destinations.py); delivery checks it
        again after resolving the host."""
        super().clean()
        if self.url:
            try:
                check_url(self.url, resolve=False)
            except RefusedDestination as error:
                raise ValidationError({"url": error.message}) from None

    def wants(self, event_type):
        return self.active and (not self.event_types or event_type in self.event_types)


class WebhookEvent(models.Model):
    """What happened, once; every endpoint gets the same id, so a receiver can tell a
    repeated delivery from a new event."""

    id = models.CharField(primary_key=True, max_length=32, default=new_event_id, editable=False)
    account = models.ForeignKey("accounts.Account", on_delete=models.CASCADE, related_name="+")
    type = models.CharField(max_length=32, choices=EVENT_TYPES)
    data = models.JSONField()
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["account", "-created_at"], name="webhook_event_account")]

    def __str__(self):
        return f"{self.type} {self.id}"


class WebhookDelivery(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SUCCEEDED = "succeeded", "Delivered"
        FAILED = "failed", "Gave up"

    event = models.ForeignKey(WebhookEvent, on_delete=models.CASCADE, related_name="deliveries")
    endpoint = models.ForeignKey(
        WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries"
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        verbose_name_plural = "webhook deliveries"
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["event", "endpoint"], name="webhook_delivery_once"),
        ]
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                condition=Q(status="pending"),
                name="webhook_delivery_due",
            ),
            # The deliveries that gave up lately, for the metrics (apps/webhooks/metrics.py).
            models.Index(
                fields=["last_attempt_at"],
                condition=Q(status="failed"),
                name="webhook_delivery_gave_up",
            ),
        ]

    def __str__(self):
        return f"{self.event_id} → {self.endpoint_id} ({self.status})"


class BalanceAlert(models.Model):
    """A wallet currently below its threshold (or empty): `balance.low` / `balance.depleted`
    fire when a wallet enters a level, and the row goes when it climbs back above."""

    class Level(models.TextChoices):
        LOW = "low", "Low"
        DEPLETED = "depleted", "Depleted"

    wallet = models.OneToOneField(
        "wallets.Wallet", on_delete=models.CASCADE, primary_key=True, related_name="+"
    )
    level = models.CharField(max_length=16, choices=Level.choices)
    since = models.DateTimeField()

    def __str__(self):
        return f"wallet {self.wallet_id}: {self.level}"
