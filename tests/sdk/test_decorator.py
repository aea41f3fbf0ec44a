"""`requires_credits` on real Django views (creditdesk.django) and on plain functions:
charged before the work, refused the app's way, reserved and committed for what was used."""

import gc
import json

import creditdesk
import pytest
from asgiref.sync import async_to_sync
from creditdesk.django import requires_credits
from django.http import HttpResponse
from django.test import RequestFactory

from tests.ledger import D, wallet_of

pytestmark = [
    pytest.mark.postgres,  # the live server needs a database its threads share
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


@pytest.fixture
def from_settings(settings, server, key):
    """The decorator's client comes from settings, built once: rebuilt for this server."""
    from creditdesk.django import _async_clients, default_client

    settings.CREDITDESK_API_KEY, settings.CREDITDESK_BASE_URL = key, server
    default_client.cache_clear(), _async_clients.clear()
    yield
    if default_client.cache_info().currsize:
        default_client().close()
    default_client.cache_clear(), _async_clients.clear()
    gc.collect()  # the async clients of loops that are gone: their connections close


def org(request, *args, **kwargs):
    return request.headers["X-Org"]


def get(**headers):
    return RequestFactory().get("/export", headers={"X-Org": "acme", **headers})


def test_a_view_runs_after_its_credits_are_charged(from_settings, acme):
    ran = []

    @requires_credits("api_call", account=org, quantity=lambda request: request.GET.get("n", 1))
    def export(request):
        ran.append(wallet_of(acme).balance)
        return HttpResponse("done")

    assert export(get()).content == b"done"
    assert ran == [D(99)]  # charged before the view ran
    assert export(RequestFactory().get("/export?n=5", headers={"X-Org": "acme"})).status_code == 200
    assert wallet_of(acme).balance == D(94)


def test_a_refusal_answers_the_apis_error_or_the_apps_own(from_settings, acme):
    @requires_credits("api_call", account=org, quantity=500)
    def expensive(request):
        pytest.fail("a refused view does not run")

    refused = expensive(get())
    assert refused.status_code == 402
    assert json.loads(refused.content)["error"]["code"] == "insufficient_credits"

    def top_up(error, request):
        return HttpResponse("Top up", status=302)

    @requires_credits("api_call", account=org, quantity=500, on_refused=top_up)
    def upsell(request):
        pytest.fail("a refused view does not run")

    assert upsell(get()).content == b"Top up"
    assert wallet_of(acme).balance == D(100)


def test_a_reserving_view_is_charged_what_it_used_or_nothing_when_it_fails(from_settings, acme):
    @requires_credits("api_call", account=org, quantity=20, reserve=True,
                      actual=lambda response, request: response["X-Used"])  # fmt: skip
    def render(request):
        assert wallet_of(acme).held == D(20)  # held while the view works
        if request.GET.get("fail"):
            raise RuntimeError("render failed")
        response = HttpResponse("rendered")
        response["X-Used"] = "7"
        return response

    assert render(get()).content == b"rendered"
    assert wallet_of(acme).balance == D(93) and wallet_of(acme).held == D(0)
    with pytest.raises(RuntimeError):
        render(RequestFactory().get("/export?fail=1", headers={"X-Org": "acme"}))
    assert wallet_of(acme).balance == D(93) and wallet_of(acme).held == D(0)


@pytest.mark.anyio
async def test_an_async_view_is_charged_through_the_async_client(from_settings, acme):
    @requires_credits("api_call", account=org, quantity=500)
    async def refused_view(request):
        pytest.fail("a refused view does not run")

    @requires_credits("api_call", account=org, quantity=2)
    async def view(request):
        return HttpResponse("async")

    assert (await view(get())).content == b"async"
    assert (await refused_view(get())).status_code == 402

    @requires_credits("api_call", account=org, quantity=10, reserve=True,
                      actual=lambda response, request: response["X-Used"])  # fmt: skip
    async def reserving_view(request):
        response = HttpResponse("rendered")
        response["X-Used"] = "3"
        return response

    assert (await reserving_view(get())).content == b"rendered"
    from creditdesk.django import default_async_client

    await default_async_client().aclose()  # this loop's client: its connections end here


def test_async_views_run_by_django_under_wsgi_each_get_a_client_of_their_loop(from_settings, acme):
    @requires_credits("api_call", account=org, quantity=2)
    async def view(request):
        return HttpResponse("async")

    for _ in range(3):  # as Django runs an async view under WSGI: each call in a new loop
        assert async_to_sync(view)(get()).content == b"async"
    assert wallet_of(acme).balance == D(94)


def test_a_reserving_view_that_used_nothing_or_more_than_it_held(from_settings, acme):
    @requires_credits("api_call", account=org, quantity=20, reserve=True,
                      actual=lambda response, request: response["X-Used"])  # fmt: skip
    def render(request):
        response = HttpResponse("rendered")
        response["X-Used"] = request.GET["used"]
        return response

    render(RequestFactory().get("/r?used=0", headers={"X-Org": "acme"}))
    assert wallet_of(acme).balance == D(100) and wallet_of(acme).held == D(0)
    render(RequestFactory().get("/r?used=500", headers={"X-Org": "acme"}))  # 480 more: refused
    assert wallet_of(acme).balance == D(80) and wallet_of(acme).held == D(0)  # the 20 held


def test_the_plain_form_raises_without_on_refused_and_needs_the_right_client(cd, acme):
    @creditdesk.requires_credits("api_call", account=lambda team: team, client=cd)
    def job(team):
        return "ran"

    assert job("acme") == "ran"
    with pytest.raises(creditdesk.AccountNotFound):  # not a refusal: the integration's bug
        job("nobody")

    @creditdesk.requires_credits("api_call", account=lambda team: team, client=cd, quantity=500)
    def big_job(team):
        return "ran"

    with pytest.raises(creditdesk.InsufficientCredits):
        big_job("acme")

    @creditdesk.requires_credits("api_call", account=lambda team: team, client=lambda: cd)
    async def async_job(team):
        return "ran"

    import anyio

    with pytest.raises(TypeError, match="AsyncCreditDesk"):
        anyio.run(async_job, "acme")
    assert wallet_of(acme).balance == D(99)


@pytest.fixture
def anyio_backend():
    return "asyncio"
