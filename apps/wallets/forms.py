from django import forms

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
    amount = _credits_field(help_text="Credits to add (up to 6 decimal places).")
    source = forms.ChoiceField(
        choices=[
            (s.value, s.label)
            for s in CreditGrant.Source
            if s in (CreditGrant.Source.PROMO, CreditGrant.Source.MANUAL, CreditGrant.Source.TRIAL)
        ],  # fmt: skip
        initial=CreditGrant.Source.MANUAL,
    )
    expires_at = forms.DateTimeField(required=False, help_text="Empty: never expires.")
    priority = forms.IntegerField(
        required=False, min_value=0, max_value=32767, help_text="Lower burns first; default 100."
    )
    reason = REASON


class ClawBackForm(forms.Form):
    amount = _credits_field(help_text="Available credits to take back, soonest-burning first.")
    reason = REASON


class VoidGrantForm(forms.Form):
    reason = REASON
