"""What CreditDesk keeps of Stripe beyond dj-stripe's mirror: each credit-pack purchase and
what became of it (the grant, refunds and disputes clawed back), and auto-recharge terms."""

from django.db import models
from django.db.models import Q
from simple_history.models import HistoricalRecords

from apps.core import humanize
from apps.core.fields import credit_field, currency_field, money_field, unit_price_field


class Purchase(models.Model):
    """A credit pack bought through Stripe. Its grant's reference is the Checkout Session id
    (or the PaymentIntent id of an off-session charge), so the credits arrive once however
    often Stripe's events come."""

    class Status(models.TextChoices):
        OPEN = "open", "Awaiting payment"
        PAID = "paid", "Paid, credits granted"
        EXPIRED = "expired", "Checkout expired"
        FAILED = "failed", "Payment failed"
        MISMATCH = "mismatch", "Paid amount differs: for Finance"

    class Origin(models.TextChoices):
        CHECKOUT = "checkout", "Checkout"
        AUTO_RECHARGE = "auto_recharge", "Auto-recharge"

    account = models.ForeignKey("accounts.Account", on_delete=models.PROTECT, related_name="+")
    credit_pack = models.ForeignKey(
        "catalog.CreditPack", on_delete=models.PROTECT, related_name="purchases"
    )
    origin = models.CharField(max_length=16, choices=Origin.choices, default=Origin.CHECKOUT)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN)
    credits = credit_field(help_text="The pack's credits when it was bought.")
    price = money_field(help_text="The pack's price when it was bought.")
    currency = currency_field()
    checkout_session_id = models.CharField(max_length=255, null=True, blank=True, unique=True)
    payment_intent_id = models.CharField(max_length=255, null=True, blank=True, unique=True)
    amount_paid = money_field(default=0)
    amount_refunded = money_field(default=0, help_text="Refunds clawed back so far.")
    amount_disputed = money_field(default=0, help_text="Disputes clawed back so far.")
    credits_clawed_back = credit_field(default=0)
    credits_disputed = credit_field(
        default=0, help_text="Of those, taken for open or lost disputes (a won one returns them)."
    )
    grant = models.OneToOneField(
        "wallets.CreditGrant", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    paid_at = models.DateTimeField(null=True, blank=True)
    mismatch_note = models.TextField(
        blank=True, help_text="What Stripe says was paid, when it is not what was sold."
    )
    history = HistoricalRecords()

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(checkout_session_id__isnull=False) | Q(payment_intent_id__isnull=False),
                name="purchase_has_a_stripe_handle",
            ),
        ]

    def __str__(self):
        return f"{self.credit_pack} for {self.account}"

    @property
    def reference(self):
        return self.checkout_session_id or self.payment_intent_id


class PlanCheckout(models.Model):
    """A Checkout Session started for a plan. At most one is open per account (a database
    constraint, claimed before Stripe is asked), so two plan Checkouts at once can never
    end in two Stripe subscriptions; Stripe's session events close it."""

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        COMPLETE = "complete", "Completed"
        EXPIRED = "expired", "Expired"
        FAILED = "failed", "Not started (Stripe refused)"

    account = models.ForeignKey("accounts.Account", on_delete=models.PROTECT, related_name="+")
    plan = models.ForeignKey("catalog.Plan", on_delete=models.PROTECT, related_name="+")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN)
    checkout_session_id = models.CharField(max_length=255, null=True, blank=True, unique=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["account"], condition=Q(status="open"), name="one_open_plan_checkout"
            ),
        ]

    def __str__(self):
        return f"{self.plan} Checkout for {self.account}"


class OverageCharge(models.Model):
    """Overage credits of an ended period and their price: sent to Stripe as an invoice item
    on the subscription's next invoice. The `overage` grant that settled the debt is its
    ledger side; its id is the Stripe idempotency key, so a retry never bills twice."""

    class Status(models.TextChoices):
        PENDING = "pending", "To send to Stripe"
        SENT = "sent", "On the Stripe invoice"
        NOT_BILLED = "not_billed", "Not billed through Stripe"

    account = models.ForeignKey("accounts.Account", on_delete=models.PROTECT, related_name="+")
    subscription = models.ForeignKey(
        "accounts.Subscription", on_delete=models.PROTECT, related_name="overage_charges"
    )
    grant = models.OneToOneField(
        "wallets.CreditGrant", on_delete=models.PROTECT, related_name="overage_charge"
    )
    credits = credit_field()
    unit_price = unit_price_field()
    amount = money_field()
    currency = currency_field()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    stripe_invoice_item_id = models.CharField(max_length=255, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    note = models.TextField(blank=True, help_text="Why it is not billed, or the last error.")
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(
                fields=["created_at"], condition=Q(status="pending"), name="overage_charge_pending"
            )
        ]

    def __str__(self):
        return f"Overage of {humanize.credits(self.credits)} for {self.account}"


class AutoRecharge(models.Model):
    """Buy `credit_pack` with the customer's saved card when available credits of its type
    fall below `threshold`: once per crossing (`armed` is cleared by a charge and set again
    when the balance is back above), never beyond `monthly_cap` a calendar month."""

    account = models.OneToOneField(
        "accounts.Account", on_delete=models.CASCADE, related_name="auto_recharge"
    )
    credit_pack = models.ForeignKey(
        "catalog.CreditPack", on_delete=models.PROTECT, related_name="+"
    )
    threshold = credit_field(help_text="Recharge when available credits fall below this.")
    monthly_cap = money_field(
        help_text="Most that auto-recharge may charge in a calendar month (pack's currency)."
    )
    enabled = models.BooleanField(default=True)
    armed = models.BooleanField(
        default=True, editable=False, help_text="Cleared by a charge until the balance recovers."
    )
    attempt = models.PositiveIntegerField(default=0, editable=False)
    charging_since = models.DateTimeField(
        null=True, blank=True, editable=False, help_text="A charge is under way (or was cut)."
    )
    last_result = models.CharField(max_length=255, blank=True, editable=False)
    last_attempt_at = models.DateTimeField(null=True, blank=True, editable=False)
    history = HistoricalRecords()

    def __str__(self):
        return f"Auto-recharge {self.credit_pack} for {self.account}"
