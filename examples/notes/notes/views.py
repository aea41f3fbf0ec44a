"""Three ways an app charges for its work, and the webhook CreditDesk calls back."""

import json

from creditdesk import InvalidSignature, verify_webhook
from creditdesk.django import default_client, requires_credits
from django.conf import settings
from django.http import HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

RECEIVED_EVENTS = []  # a real app would store them, keyed by event id


def team(request, *args, **kwargs):
    """The CreditDesk account of the caller: here a header, in an app its user's team."""
    return request.headers["X-Team"]


def upgrade_page(error, request, *args, **kwargs):
    """A refusal answered the app's way: what happened, and where to buy more."""
    return JsonResponse(
        {"refused": error.code, "details": error.details, "buy_more": "/pricing"},
        status=error.status,
    )


@csrf_exempt
@require_POST
@requires_credits("notes.summarize", account=team, on_refused=upgrade_page)
def summarize(request):
    """One credit a summary, charged before the work."""
    text = request.body.decode()
    return JsonResponse({"summary": text[:40]})


def pages_used(response, request, *args, **kwargs):
    return json.loads(response.content)["pages"]


@csrf_exempt
@require_POST
@requires_credits(
    "notes.render",
    account=team,
    quantity=lambda request, *a, **k: request.GET.get("max_pages", "10"),
    reserve=True,
    actual=pages_used,
    on_refused=upgrade_page,
)
def render(request):
    """Pages are known only once rendered: hold the most it may take, commit what it took.
    A render that fails is charged nothing."""
    text = request.body.decode()
    if not text:
        raise ValueError("nothing to render")
    pages = max(1, len(text) // 100)
    return JsonResponse({"pages": pages})


def credits(request):
    """What the team has left, read through the same client."""
    balance = default_client().balance(account=team(request))
    return JsonResponse({w["credit_type"]: w["available"] for w in balance["wallets"]})


@csrf_exempt
@require_POST
def creditdesk_hook(request):
    if not settings.CREDITDESK_WEBHOOK_SECRET:
        return HttpResponse("CREDITDESK_WEBHOOK_SECRET is not set", status=503)
    try:
        event = verify_webhook(request.body, request.headers, settings.CREDITDESK_WEBHOOK_SECRET)
    except InvalidSignature as problem:
        return HttpResponse(str(problem), status=400)
    RECEIVED_EVENTS.append(event["id"])
    return HttpResponse(status=204)
