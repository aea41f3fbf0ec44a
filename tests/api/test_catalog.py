import pytest

from tests.api.conftest import EXTERNAL_ASSET
from tests.factories import (
    CreditPackFactory,
    FeatureFactory,
    PlanAllowanceFactory,
    PlanFactory,
    PlanFeatureFactory,
)

pytestmark = pytest.mark.django_db


def test_plans_need_an_api_key(api_client):
    response = api_client.get("/api/v1/plans")
    assert response.status_code == 401
    assert response.json() == {
        "error": {
            "code": "unauthenticated",
            "message": "Authentication credentials were not provided.",
            "details": {},
        }
    }


def test_plans_lists_active_public_plans_with_their_terms(authed_client):
    plan = PlanFactory(code="pro", price="99.00")
    PlanAllowanceFactory(plan=plan, credits_per_period="10000")
    PlanFeatureFactory(plan=plan, feature=FeatureFactory(code="api_call"), limit_per_period=5)
    PlanFactory(code="secret", public=False)
    PlanFactory(code="retired", active=False)

    response = authed_client.get("/api/v1/plans")

    assert response.status_code == 200
    [body] = response.json()
    assert body["code"] == "pro"
    assert body["price"] == "99.00"
    assert body["included_credits"] == [
        {"credit_type": "credits", "credits_per_period": "10000.000000"}
    ]
    assert body["features"] == [
        {
            "feature": "api_call",
            "enabled": True,
            "credits_per_unit": None,
            "limit_per_period": "5.000000",
        }
    ]


def test_credit_packs_and_features_list_what_is_on_sale(authed_client):
    CreditPackFactory(code="pack_1k")
    CreditPackFactory(code="hidden", public=False)
    FeatureFactory(code="api_call")
    FeatureFactory(code="old", active=False)
    packs = authed_client.get("/api/v1/credit-packs").json()
    features = authed_client.get("/api/v1/features").json()
    assert [p["code"] for p in packs] == ["pack_1k"]
    assert packs[0]["credits"] == "1000.000000"
    assert [f["code"] for f in features] == ["api_call"]


def test_plans_list_uses_a_fixed_number_of_queries(authed_client, django_assert_max_num_queries):
    for _ in range(5):
        plan = PlanFactory()
        PlanAllowanceFactory(plan=plan)
        PlanFeatureFactory(plan=plan)
    authed_client.get("/api/v1/features")  # the key's first use writes last_used_at
    with django_assert_max_num_queries(4):
        assert len(authed_client.get("/api/v1/plans").json()) == 5


def test_schema_describes_the_catalog_endpoints_and_bearer_auth(client):
    response = client.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    schema = response.json()
    assert {"/api/v1/plans", "/api/v1/credit-packs", "/api/v1/features"} <= set(schema["paths"])
    assert schema["components"]["securitySchemes"]["ApiKey"]["scheme"] == "bearer"


def test_docs_render_offline_from_local_assets(client):
    response = client.get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/" in html
    assert not EXTERNAL_ASSET.search(html)  # (not "cdn" in html: a random nonce may hold it)
    asset = client.get("/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js")
    assert asset.status_code == 200
