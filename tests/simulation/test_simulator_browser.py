"""The simulator in a real browser (Debian's headless Chromium): Pricing opens *Try a
pricing change*, puts a draft in, picks a range and a plan, starts it, watches it queued,
and reads the results once the task has run. Screenshots go to test-output/admin/."""

from datetime import UTC, datetime

import pytest

from apps.simulation.models import SimulationRun
from apps.simulation.services import run_simulation
from tests.staff import OUTPUT, PASSWORD, log_in, staff

from .test_runs import DRAFT

pytestmark = [
    pytest.mark.postgres,  # a live server shares the database (see tests/billing/test_browser.py)
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
    pytest.mark.browser,
]
# Taken before any test moves the clock: the browser keeps real time, and a session cookie
# dated in the fixture's past would be expired for it.
REAL_NOW = datetime.now(UTC)


def test_pricing_runs_a_simulation_and_reads_its_results(browser, live_server, one_month):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as seen
    from selenium.webdriver.support.ui import Select, WebDriverWait

    one_month.time_machine.move_to(REAL_NOW, tick=True)
    OUTPUT.mkdir(parents=True, exist_ok=True)
    wait = WebDriverWait(browser, 30)
    log_in(browser, live_server, staff("Pricing").username, PASSWORD)
    browser.get(f"{live_server.url}/admin/simulation/simulationrun/add/")
    wait.until(seen.presence_of_element_located((By.ID, "id_draft")))
    assert "code: pro" in browser.find_element(By.ID, "id_draft").get_attribute("value")
    browser.find_element(By.ID, "id_title").send_keys("API calls at 1.5 credits")
    draft = browser.find_element(By.ID, "id_draft")
    browser.execute_script("arguments[0].value = arguments[1]", draft, DRAFT)
    for field, value in (("first_day", "2026-02-06"), ("last_day", "2026-03-05")):
        element = browser.find_element(By.ID, f"id_{field}")
        element.clear()
        element.send_keys(value)
    Select(browser.find_element(By.ID, "id_plan")).select_by_value("pro")
    browser.set_window_size(1280, 1600)
    browser.save_screenshot(str(OUTPUT / "simulation-start.png"))
    browser.find_element(By.CSS_SELECTOR, "#simulation-form input[type=submit]").click()

    wait.until(seen.presence_of_element_located((By.ID, "simulation-progress")))
    assert "Queued" in browser.find_element(By.ID, "content-main").text
    browser.save_screenshot(str(OUTPUT / "simulation-queued.png"))
    run = SimulationRun.objects.get()
    run_simulation(run_id=run.pk)  # what the Celery task does (a worker runs it elsewhere)

    wait.until(seen.presence_of_element_located((By.ID, "simulation-totals")))  # it refreshes
    totals = browser.find_element(By.ID, "simulation-totals").text
    assert "Credits charged 930 credits 1,380 credits" in totals
    assert "Overage billed — 4.00 USD" in totals
    assert "+450 credits" in browser.find_element(By.ID, "simulation-affected").text
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(1280, height + 100)
    browser.save_screenshot(str(OUTPUT / "simulation-results.png"))
    browser.get(f"{live_server.url}/admin/simulation/simulationrun/")
    assert "API calls at 1.5 credits" in browser.find_element(By.ID, "result_list").text
    browser.save_screenshot(str(OUTPUT / "simulation-runs.png"))
