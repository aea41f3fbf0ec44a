from django import forms

from apps.catalog.models import CreditType
from apps.core.decimals import CREDIT_DIGITS, CREDIT_PLACES

from .models import CreditGrant


def _credits_field(**kwargs):
    return forms.DecimalField(
        max_digits=CREDIT_DIGITS, decimal_places=CREDIT_PLACES, min_value=0.000001, **kwargs
    )


REASON = forms.CharField(
    widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
    help_text="Kept in the ledger with your name. Say why, e.g. the ticket number.",
)


class GrantCreditsForm(forms.Form):
    """A staff grant of free credits. On a wallet's page the wallet fixes the credit type; on
    an account's page (`choose_credit_type=True`) staff pick it, wallet or not yet."""

    credit_type = forms.ModelChoiceField(queryset=CreditType.objects.all())
    amount = _credits_field(help_text="Credits to add (up to 6 decimal places).")
    source = forms.ChoiceField(
        choices=[(s.value, s.label) for s in CreditGrant.FREE_SOURCES],
        initial=CreditGrant.Source.MANUAL,
    )
    expires_at = forms.DateTimeField(required=False, help_text="Empty: never expires.")
    priority = forms.IntegerField(
        required=False, min_value=0, max_value=32767, help_text="Lower burns first; default 100."
    )
    reason = REASON

    def __init__(self, *args, choose_credit_type=False, **kwargs):
        super().__init__(*args, **kwargs)
        if not choose_credit_type:
            del self.fields["credit_type"]


class ClawBackForm(forms.Form):
    amount = _credits_field(help_text="Available credits to take back, soonest-burning first.")
    reason = REASON


class VoidGrantForm(forms.Form):
    reason = REASON
