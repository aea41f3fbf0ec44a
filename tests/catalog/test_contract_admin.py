"""Contracts in the admin: Finance adds, changes and deletes them, every write through the
contract services (put_contract, remove_contract), so the history says who and why and the
service's problems show on the form; Pricing and Support only read them."""

from datetime import timedelta
from decimal import Decimal as D

import pytest
from django.utils import timezone

from apps.catalog.contract_admin import readable, sorted_problems
from apps.catalog.contracts import contract_document, put_contract
from apps.catalog.models import Contract, ContractFeature
from tests.factories import AccountFactory, CreditTypeFactory, FeatureFactory, UserFactory

# A contract's own price comes with its currency and its own overage unit price.
IN_USD = {"currency": "USD", "overage": {"unit_price": "0.004"}}
pytestmark = pytest.mark.django_db

ADD = "/admin/catalog/contract/add/"


@pytest.fixture
def finance(client):
    client.user = UserFactory(groups=["Finance"])
    client.force_login(client.user)
    return client


@pytest.fixture
def account():
    return AccountFactory(external_id="acme", name="Acme Ltd")


@pytest.fixture
def api_call():
    return FeatureFactory(code="api_call", credit_type=CreditTypeFactory(code="credits"))


def moment(days):
    return timezone.now().replace(microsecond=0) + timedelta(days=days)


def contract_form(account, *, starts=1, ends=366, features=(), allowances=(), **fields):
    """The contract form as the admin posts it: `features` and `allowances` are the inlines'
    rows (dicts of their fields), `fields` override the contract's."""
    data = {
        "account": account.pk,
        "starts_at_0": f"{moment(starts):%Y-%m-%d}", "starts_at_1": "00:00:00",
        "ends_at_0": f"{moment(ends):%Y-%m-%d}", "ends_at_1": "00:00:00",
        "price": "", "currency": "", "overage_policy": "", "overage_limit": "",
        "overage_unit_price": "", "reason": "Deal #42, signed by Acme",
    }  # fmt: skip
    if fields.get("price"):  # a contract's own price comes with its own overage unit price
        data["overage_unit_price"] = "0.004"
    data.update(fields)
    for prefix, rows in (("features", features), ("allowances", allowances)):
        data.update({f"{prefix}-TOTAL_FORMS": len(rows), f"{prefix}-INITIAL_FORMS": 0,
                     f"{prefix}-MIN_NUM_FORMS": 0, f"{prefix}-MAX_NUM_FORMS": 1000})  # fmt: skip
        for index, row in enumerate(rows):
            data.update({f"{prefix}-{index}-{name}": value for name, value in row.items()})
    return data


def form_errors(response):
    """The errors the page shows: the contract's by field, then each inline row's."""
    assert response.status_code == 200, response
    errors = dict(response.context["adminform"].form.errors)
    for inline in response.context["inline_admin_formsets"]:
        for index, form in enumerate(inline.formset.forms):
            for field, messages in form.errors.items():
                errors[f"{inline.formset.prefix}[{index}].{field}"] = messages
    return errors


def test_finance_adds_a_contract_and_its_history_says_who_and_why(finance, account, api_call):
    form = contract_form(
        account, price="1200.00", currency="USD", overage_policy="allow", overage_limit="100",
        features=[{"feature": api_call.pk, "enabled": "unknown", "credits_per_unit": "0.5",
                   "sets_limit": "on", "limit_per_period": "10000"}],
        allowances=[{"credit_type": api_call.credit_type.pk, "credits_per_period": "5000"}],
    )  # fmt: skip

    response = finance.post(ADD, form)

    assert response.status_code == 302, form_errors(response)
    contract = Contract.objects.get(account=account)
    document = contract_document(contract)
    assert {key: document[key] for key in ("price", "currency", "overage")} == {
        "price": "1200.00", "currency": "USD",
        "overage": {"policy": "allow", "limit": "100", "unit_price": "0.004"},
    }  # fmt: skip
    assert document["features"] == [
        {"feature": "api_call", "credits_per_unit": "0.5", "limit_per_period": "10000"}
    ]
    assert document["included_credits"] == {"credits": "5000"}
    record = contract.history.get()
    assert (record.history_user, record.history_change_reason) == (
        finance.user, "Deal #42, signed by Acme",
    )  # fmt: skip
    feature_record = ContractFeature.history.get()
    assert feature_record.history_change_reason == "Deal #42, signed by Acme"


def test_a_reason_is_required(finance, account):
    response = finance.post(ADD, contract_form(account, reason=""))

    assert form_errors(response) == {"reason": ["This field is required."]}
    assert not Contract.objects.exists()


def test_an_end_before_the_start_shows_the_services_message_and_writes_nothing(finance, account):
    response = finance.post(ADD, contract_form(account, starts=30, ends=10))

    assert form_errors(response) == {"ends_at": ["Ends at must be after the start."]}
    assert not Contract.objects.exists()


def test_terms_that_do_not_go_together_are_shown_on_their_fields(finance, account, api_call):
    form = contract_form(
        account, currency="EUR", overage_policy="block", overage_limit="100",
        features=[{"feature": api_call.pk, "enabled": "unknown", "credits_per_unit": ""}],
    )  # fmt: skip

    errors = form_errors(finance.post(ADD, form))

    assert errors == {
        "currency": ["Currency is given only with a price (without one, the plan's applies)."],
        "overage_limit": ["Overage limit must be 0 unless the overage policy is “allow”."],
        "features[0].feature": [
            "Feature sets no term: give enabled, credits per unit or limit per period."
        ],
    }
    assert not Contract.objects.exists()


def test_a_price_finer_than_the_currency_is_the_services_problem(finance, account):
    errors = form_errors(finance.post(ADD, contract_form(account, price="100.50", currency="JPY")))

    assert errors == {
        "price": ["A price in JPY is a whole number (JPY has no smaller unit): 100.5 is not."]
    }


def test_an_account_has_one_contract(finance, account):
    put_contract(account=account, raw={"ends_at": None})

    errors = form_errors(finance.post(ADD, contract_form(account)))

    assert list(errors) == ["account"]
    assert Contract.objects.count() == 1


def test_finance_changes_a_contract_through_the_service(finance, account, api_call):
    contract, _ = put_contract(
        account=account,
        raw={"price": "1000.00", **IN_USD, "features": [
            {"feature": "api_call", "credits_per_unit": "1"}]},
        reason="first deal",
    )  # fmt: skip
    form = contract_form(account, price="1200.00", currency="USD", reason="Renegotiated")
    form.update({"features-INITIAL_FORMS": 1, "features-TOTAL_FORMS": 1,
                 "features-0-id": contract.features.get().pk,
                 "features-0-contract": contract.pk, "features-0-feature": api_call.pk,
                 "features-0-enabled": "false", "features-0-credits_per_unit": "1",
                 "features-0-limit_per_period": ""})  # fmt: skip

    response = finance.post(f"/admin/catalog/contract/{contract.pk}/change/", form)

    assert response.status_code == 302, form_errors(response)
    contract.refresh_from_db()
    assert contract_document(contract)["price"] == "1200.00"
    assert contract_document(contract)["features"] == [
        {"feature": "api_call", "enabled": False, "credits_per_unit": "1"}
    ]
    latest = contract.history.order_by("-history_id").first()
    assert (latest.history_user, latest.history_change_reason) == (finance.user, "Renegotiated")


def test_delete_removes_it_through_remove_contract(finance, account):
    contract, _ = put_contract(
        account=account,
        raw={"price": "10.00", **IN_USD},
    )
    url = f"/admin/catalog/contract/{contract.pk}/delete/"
    assert "Reason" in finance.get(url).content.decode()

    response = finance.post(url, {"post": "yes", "reason": "Deal cancelled"})

    assert response.status_code == 302
    assert not Contract.objects.exists()
    removed = Contract.history.order_by("-history_id").first()
    assert (removed.history_type, removed.history_user, removed.history_change_reason) == (
        "-", finance.user, "Deal cancelled",
    )  # fmt: skip


def test_the_list_reads_state_window_and_price(finance, api_call):
    put_contract(account=AccountFactory(external_id="live"),
                 raw={"price": "1200.00", **IN_USD})  # fmt: skip
    put_contract(account=AccountFactory(name="Later Inc"),
                 raw={"starts_at": moment(10).isoformat()})  # fmt: skip

    page = finance.get("/admin/catalog/contract/").content.decode()

    assert "1,200.00 USD" in page and "the plan&#x27;s" in page
    assert "live" in page and "scheduled" in page
    scheduled = finance.get("/admin/catalog/contract/?state=scheduled").content.decode()
    assert "Later Inc" in scheduled and "1,200.00 USD" not in scheduled


@pytest.mark.parametrize("group", ["Support", "Pricing"])
def test_support_and_pricing_read_a_contract_but_cannot_change_it(client, account, group):
    contract, _ = put_contract(account=account, raw={"price": "1200.00", **IN_USD},
                               reason="deal")  # fmt: skip
    client.force_login(UserFactory(groups=[group]))
    url = f"/admin/catalog/contract/{contract.pk}/"

    page = client.get(f"{url}change/")

    assert page.status_code == 200 and "1,200.00 USD" in page.content.decode()
    assert "Reason" not in page.content.decode()
    assert client.post(f"{url}change/", contract_form(account, price="1.00")).status_code == 403
    assert client.post(f"{url}delete/", {"post": "yes"}).status_code == 403
    assert client.post(ADD, contract_form(AccountFactory())).status_code == 403
    contract.refresh_from_db()
    assert contract.price == D("1200.00")


def test_the_history_is_read_not_reverted(finance, account, api_call):
    contract, _ = put_contract(
        account=account,
        raw={"price": "1200.00", **IN_USD, "included_credits": {"credits": "5000"},
             "features": [{"feature": "api_call", "credits_per_unit": "0.5"}]},
        reason="first deal",
    )  # fmt: skip
    put_contract(
        account=account,
        raw={"price": "900.00", **IN_USD,
             "features": [{"feature": "api_call", "limit_per_period": "10000"}]},
        reason="discount",
    )  # fmt: skip
    oldest = contract.history.order_by("history_id").first()

    page = finance.get(f"/admin/catalog/contract/{contract.pk}/history/").content.decode()
    revert = finance.post(f"/admin/catalog/contract/{contract.pk}/history/{oldest.history_id}/",
                          {"price": "1200.00", "currency": "USD"})  # fmt: skip

    assert "first deal" in page and "discount" in page
    assert "1,200.00 USD" in page and "900.00 USD" in page
    assert "api_call: 0.5 credits / unit; credits: 5,000 credits / period" in page
    assert "api_call: quota 10,000" in page
    assert revert.status_code == 403
    contract.refresh_from_db()
    assert contract.price == D("900.00")


def test_the_lists_delete_action_removes_each_through_remove_contract(finance):
    contracts = [put_contract(account=AccountFactory(), raw={"ends_at": None})[0] for _ in range(2)]

    response = finance.post(
        "/admin/catalog/contract/",
        {"action": "delete_selected", "post": "yes",
         "_selected_action": [contract.pk for contract in contracts]},
    )  # fmt: skip

    assert response.status_code == 302
    assert not Contract.objects.exists()
    removals = Contract.history.filter(history_type="-")
    assert [(r.history_user, r.history_change_reason) for r in removals] == [
        (finance.user, "deleted in the admin")
    ] * 2


def test_the_account_page_links_its_contract(finance, account):
    url = f"/admin/accounts/account/{account.pk}/change/"
    assert f"/admin/catalog/contract/add/?account={account.pk}" in finance.get(url).content.decode()

    contract, _ = put_contract(account=account, raw={"ends_at": moment(30).isoformat()})

    page = finance.get(url).content.decode()
    assert f"/admin/catalog/contract/{contract.pk}/change/" in page
    assert f"live · {contract.starts_at:%Y-%m-%d %H:%M} → {moment(30):%Y-%m-%d %H:%M} UTC" in page


def test_staff_who_may_not_add_a_contract_see_no_link_to_add_one(client, account):
    client.force_login(UserFactory(groups=["Support"]))

    page = client.get(f"/admin/accounts/account/{account.pk}/change/").content.decode()

    assert "Add a contract" not in page and "catalog/contract/add" not in page


def test_each_problem_of_the_service_goes_where_staff_will_look():
    found = sorted_problems({
        "ends_at": ["must be after starts_at"],
        "overage.unit_price": ["has more than 10 decimal places"],
        "features[1].enabled": ["must be true or false"],
        "included_credits.gpu": ["unknown credit type 'gpu'"],
        "non_field_errors": ["The contract must be a JSON object."],
    })  # fmt: skip

    assert found == {
        "form": [("ends_at", "must be after starts_at"),
                 ("overage_unit_price", "has more than 10 decimal places"),
                 (None, "The contract must be a JSON object.")],
        "features": [(1, "enabled", "must be true or false")],
        "allowances": [("gpu", None, "unknown credit type 'gpu'")],
    }  # fmt: skip
    assert readable("Ends at", "must be after starts_at") == "Ends at must be after the start."
    assert readable("", "A price in JPY is a whole number") == "A price in JPY is a whole number."
