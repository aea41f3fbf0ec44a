"""The hosted billing page (apps/billing/billing_page.py): thin views over the link, the
page's reads and the Checkout services. Every answer is private to the link's holder: not
cached, not indexed, and no Referer carries the token to Stripe or any other site."""

from contextlib import nullcontext
from functools import wraps
from urllib.parse import urlencode

from django.http import HttpResponseRedirect, JsonResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.formats import date_format
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from apps.accounts.models import Subscription
from apps.accounts.selectors import live_subscription
from apps.catalog.models import CreditPack, Plan
from apps.catalog.selectors import on_sale
from apps.core.errors import DomainError, PaymentProviderError
from apps.core.replicas import replica_reads

from . import billing_page as page
from .checkout import start_checkout, switch_stripe_plan
from .models import Purchase

# same-origin, not no-referrer: the token stays off other sites, and the browser still sends
# the Origin that Django's CSRF check compares on the page's own forms.
PRIVATE = {"Referrer-Policy": "same-origin", "X-Robots-Tag": "noindex, nofollow"}
WAIT_REFRESHES = 20  # without scripts, a pending payment re-checks for about a minute


def _private(view):
    @wraps(view)
    def wrapped(request, token, *args, **kwargs):
        try:
            account = page.account_for_token(token=token)
        except page.BillingLinkInvalid as invalid:
            response = TemplateResponse(
                request, "billing/link_invalid.html", {"reason": invalid.reason}, status=403
            )
        else:
            response = view(request, token, account, *args, **kwargs)
        for header, value in PRIVATE.items():
            response[header] = value
        return response

    return never_cache(wrapped)


def _page_url(request, token, **query):
    url = request.build_absolute_uri(reverse("billing:page", kwargs={"token": token}))
    return f"{url}?{urlencode(query, safe='{}')}" if query else url


def _render(request, token, account, *, notice=None, error=None, status=200):
    context = page.billing_page(account=account)
    context.update(token=token, notice=notice, error=error)
    return TemplateResponse(request, "billing/page.html", context, status=status)


@require_GET
@_private
def billing_page(request, token, account):
    checkout = request.GET.get("checkout", "")
    # Back from a checkout, the customer expects to see what they just paid for: the primary.
    # Otherwise the page decides no money and may come from a replica.
    with nullcontext() if checkout else replica_reads():
        return _billing_page(request, token, account, checkout)


def _billing_page(request, token, account, checkout):
    notice, poll = None, None
    if checkout == "canceled":
        notice = {"kind": "info", "text": "Checkout was canceled; nothing was charged."}
    elif checkout == "switch":
        notice = _switch_notice(account)
    elif checkout:
        notice, pending = _checkout_notice(account, checkout)
        if pending:
            # A script asks the status URL every 2 s and reloads the page once it is done;
            # without scripts the page refreshes itself, a bounded number of times.
            wait = _int(request.GET.get("wait"))
            status_url = reverse("billing:checkout-status", kwargs={"token": token})
            poll = {
                "status_url": f"{status_url}?{urlencode({'checkout': checkout})}",
                "done_url": _page_url(request, token, checkout=checkout),
                "fallback_url": _page_url(request, token, checkout=checkout, wait=wait + 1)
                if wait < WAIT_REFRESHES
                else None,
            }
    response = _render(request, token, account, notice=notice)
    response.context_data["poll"] = poll
    return response


@require_GET
@_private
def checkout_status(request, token, account):
    """Whether the Checkout the customer came back from is still being confirmed."""
    _, pending = _checkout_notice(account, request.GET.get("checkout", ""))
    return JsonResponse({"pending": pending})


def _switch_notice(account):
    subscription = live_subscription(account=account)
    if subscription is None:
        return None
    if subscription.scheduled_plan is None:
        return {"kind": "success", "text": f"You stay on {subscription.plan.name}."}
    when = date_format(subscription.current_period_end, "j M Y")
    text = (
        f"Your plan changes to {subscription.scheduled_plan.name} when this period ends ({when})."
    )
    return {"kind": "success", "text": text}


def _checkout_notice(account, session_id):
    """What became of the Checkout the customer came back from, and whether it is still
    being confirmed (Stripe's event may arrive a moment after the customer does)."""
    purchase = Purchase.objects.filter(account=account, checkout_session_id=session_id).first()
    if purchase is None:  # a plan, or a session of another account: say nothing specific
        # Confirmed: Stripe has started it (past due would mean its first payment failed).
        confirmed = (Subscription.Status.ACTIVE, Subscription.Status.TRIALING)
        subscription = account.subscriptions.filter(
            stripe_subscription_id__isnull=False, status__in=confirmed
        ).first()
        if subscription is not None:
            return {"kind": "success", "text": f"You are on {subscription.plan.name}."}, False
        return {"kind": "info", "text": "Confirming your subscription with Stripe…"}, True
    if purchase.status == Purchase.Status.PAID:
        text = f"Payment received: {purchase.credit_pack.name} added to your balance."
        return {"kind": "success", "text": text}, False
    if purchase.status == Purchase.Status.OPEN:
        return {"kind": "info", "text": "Confirming your payment with Stripe…"}, True
    if purchase.status == Purchase.Status.MISMATCH:
        text = "We received a payment we could not match to this pack; our team will be in touch."
        return {"kind": "error", "text": text}, False
    if purchase.status == Purchase.Status.FAILED:
        text = "Your payment failed at your bank; nothing was added. You can try again."
        return {"kind": "error", "text": text}, False
    return {"kind": "error", "text": "The payment did not go through; nothing was added."}, False


def _int(value):
    try:
        return max(0, int(value))
    except (TypeError, ValueError):
        return 0


@require_POST
@_private
def buy(request, token, account):
    """Start a Checkout for a pack or a plan, or switch a Stripe subscription's plan."""
    code = request.POST.get("code", "")
    kind = request.POST.get("kind", "")
    model = {"credit_pack": CreditPack, "plan": Plan}.get(kind)
    item = on_sale(model=model, code=code) if model else None
    if item is None:
        return _render(request, token, account, status=400,
                       error="That item is not on sale any more. Pick another one.")  # fmt: skip
    try:
        if kind == "plan" and request.POST.get("switch"):
            switch_stripe_plan(account=account, plan=item)
            return HttpResponseRedirect(_page_url(request, token, checkout="switch"))
        checkout = start_checkout(
            account=account,
            **{kind: item},
            success_url=_page_url(request, token, checkout="{CHECKOUT_SESSION_ID}"),
            cancel_url=_page_url(request, token, checkout="canceled"),
        )
    except DomainError as error:
        status = 502 if isinstance(error, PaymentProviderError) else 400
        return _render(request, token, account, error=error.message, status=status)
    return HttpResponseRedirect(checkout.checkout_url, status=303)
