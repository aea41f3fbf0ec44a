"""The job-run list puts failures and lag first: statuses in colour, a "needs attention"
filter (failed runs, and runs still running past their job's beat interval), an idle row in
words, and above the list a notice per job that failed last or has not succeeded within three
of its intervals."""

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from apps.jobs.models import JobRun
from tests.factories import JobRunFactory, UserFactory

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
LIST = reverse("admin:jobs_jobrun_changelist")


def ago(minutes):
    return NOW - timedelta(minutes=minutes)


@pytest.fixture
def finance(client, time_machine):
    time_machine.move_to(NOW, tick=False)
    client.force_login(UserFactory(groups=["Finance"]))
    return client


def listed(client, query=""):
    response = client.get(LIST + query)
    assert response.status_code == 200
    return response


def test_the_list_shows_failed_stuck_running_and_idle_rows_apart(finance):
    JobRunFactory(job="check_balance_alerts", idle_runs=57, started_at=ago(58),
                  last_started_at=ago(2), finished_at=ago(2))  # fmt: skip
    JobRunFactory(job="post_revenue", status="failed", started_at=ago(3), finished_at=ago(3),
                  counts={"posted": 1200, "failures": 1})  # fmt: skip
    JobRunFactory(job="renew_due_subscriptions", status="running", started_at=ago(20),
                  finished_at=None)  # fmt: skip
    JobRunFactory(job="expire_grants", status="running", started_at=ago(1), finished_at=None)
    html = listed(finance).content.decode()
    assert "nothing due × 57 (09:02–09:58)" in html
    assert '<span class="jobrun-status jobrun-failed">failed</span>' in html
    assert "posted 1,200, failures 1" in html
    assert '<span class="jobrun-status jobrun-stuck">running, stuck</span>' in html
    assert '<span class="jobrun-status jobrun-running">running</span>' in html
    assert "jobs/job_runs.css" in html
    idle = JobRun.objects.get(job="check_balance_alerts")
    page = finance.get(reverse("admin:jobs_jobrun_change", args=[idle.pk]))
    assert "nothing due × 57 (09:02–09:58)" in page.content.decode()


def test_needs_attention_lists_failed_runs_and_runs_running_past_their_interval(finance):
    failed = JobRunFactory(job="post_revenue", status="failed", started_at=ago(30))
    stuck = JobRunFactory(job="expire_grants", status="running", finished_at=None,
                          started_at=ago(6))  # every 5 min  # fmt: skip
    JobRunFactory(job="expire_grants", status="running", finished_at=None, started_at=ago(4))
    JobRunFactory(job="notify_trials_ending", status="running", finished_at=None,
                  started_at=ago(20))  # every 60 min: not yet  # fmt: skip
    JobRunFactory(job="post_revenue", started_at=ago(1))
    JobRunFactory(job="check_balance_alerts", idle_runs=3, started_at=ago(90),
                  last_started_at=ago(88))  # fmt: skip
    # A job beat does not run is stuck after its task's time limit (16 minutes).
    gone = JobRunFactory(job="retired_job", status="running", finished_at=None,
                         started_at=ago(17))  # fmt: skip
    JobRunFactory(job="retired_job", status="running", finished_at=None, started_at=ago(15))
    shown = listed(finance, "?attention=yes").context["cl"].result_list
    assert {run.pk for run in shown} == {failed.pk, stuck.pk, gone.pk}


def test_a_notice_names_each_job_that_failed_last_or_has_not_succeeded_lately(finance):
    JobRunFactory(job="post_revenue", started_at=ago(10), finished_at=ago(10))
    JobRunFactory(job="post_revenue", status="failed", started_at=ago(2), finished_at=ago(2))
    JobRunFactory(job="send_overage_charges", started_at=ago(121), finished_at=ago(120))
    JobRunFactory(job="send_overage_charges", status="running", finished_at=None,
                  started_at=ago(30))  # fmt: skip
    # Within three of their intervals (1 and 5 minutes), or never run: nothing to say.
    JobRunFactory(job="check_balance_alerts", idle_runs=9, started_at=ago(20),
                  last_started_at=ago(3), finished_at=ago(2))  # fmt: skip
    JobRunFactory(job="expire_grants", status="failed", started_at=ago(16), finished_at=ago(16))
    JobRunFactory(job="expire_grants", started_at=ago(11), finished_at=ago(11))
    response = listed(finance)
    alerts = [(a.level, a.text) for a in response.context["job_alerts"]]
    assert alerts == [
        ("warning", "send_overage_charges: no success for 2 h (beat runs it every 5 min)."),
        ("error", "post_revenue: its latest run failed (09:58)."),
    ]  # in the jobs' order
    html = response.content.decode()
    assert '<li class="error">post_revenue: its latest run failed (09:58).' in html
    assert '<a href="?job=send_overage_charges">Its runs</a>' in html


def test_the_lag_is_read_from_beats_schedules_as_staff_set_them(finance):
    JobRunFactory(job="send_overage_charges", started_at=ago(121), finished_at=ago(120))
    JobRunFactory(job="expire_grants", started_at=ago(60), finished_at=ago(60))
    schedule = PeriodicTask.objects.get(task="periods.send_overage_charges")
    schedule.interval, _ = IntervalSchedule.objects.get_or_create(every=1, period="hours")
    schedule.save()  # two hours is within three of its hours
    PeriodicTask.objects.filter(task="periods.expire_grants").update(enabled=False)
    assert listed(finance).context["job_alerts"] == []


def test_the_list_needs_no_more_queries_for_more_rows(finance):
    def queries():
        with CaptureQueriesContext(connection) as captured:
            listed(finance)
        return len(captured)

    JobRunFactory(job="post_revenue", status="failed", started_at=ago(50))
    one = queries()
    for minutes in range(40):
        JobRunFactory(
            job="expire_grants", status="running", finished_at=None, started_at=ago(minutes)
        )
    assert queries() == one
