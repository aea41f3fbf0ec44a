"""Simulation runs: started by staff (the admin) or a command, replayed by a Celery task a
chunk of accounts at a time, with progress and a cancel that leaves nothing behind."""

import logging
import random
from datetime import UTC, datetime, time, timedelta

from django.db import transaction
from django.db.models import Q

from apps.accounts.models import Account, Subscription
from apps.catalog.pricebook import CatalogFileError, read_document
from apps.core import clock, outbox
from apps.core.errors import InvalidInput, NotFound
from apps.jobs.counts import JobCounts
from apps.wallets.models import Wallet

from .figures import Figures
from .models import SimulationLine, SimulationRun
from .replay import live_from, simulate_chunks
from .report import Change, sum_figures
from .sandbox import draft_catalog

log = logging.getLogger(__name__)
SIMULATE_TASK = "simulation.run"
CHUNK_TASK = "simulation.chunk"
CHUNK_SIZE = 1000
# A chunk's ids are bound as parameters of one statement: PostgreSQL takes at most 65,535.
MAX_CHUNK_SIZE = 50_000
# A run whose worker has not reported for this long is taken for dead: cancelling it
# finishes it at once instead of waiting for a worker that will never look at the flag.
STALE_AFTER = timedelta(minutes=10)
Status = SimulationRun.Status


# --- input ------------------------------------------------------------------------------------


def read_draft(*, text, filename="draft.yaml"):
    """The draft catalog file, parsed; InvalidInput naming what is wrong with it."""
    try:
        raw = read_document(text, filename=filename)
    except CatalogFileError as error:
        raise InvalidInput(f"The draft is {error}.", details={"draft": [str(error)]}) from None
    if not isinstance(raw, dict):
        raise InvalidInput("The draft is not a catalog file.", details={"draft": ["not a mapping"]})
    return raw


def read_contracts(*, text):
    """Draft contracts, `{account id: contract body}`, from a YAML or JSON mapping of account
    external id to contract body (docs/contracts.md); InvalidInput naming what is wrong."""
    if not (text or "").strip():
        return {}
    try:
        raw = read_document(text, filename="contracts.yaml")
    except CatalogFileError as error:
        raise InvalidInput(
            f"The contracts are {error}.", details={"contracts": [str(error)]}
        ) from None
    if not isinstance(raw, dict) or not all(isinstance(b, dict) for b in raw.values()):
        raise InvalidInput("The contracts must map account ids to contract bodies.",
                           details={"contracts": ["not a mapping of contract bodies"]})  # fmt: skip
    found = dict(Account.objects.filter(external_id__in=[str(k) for k in raw])
                 .values_list("external_id", "pk"))  # fmt: skip
    unknown = sorted(str(k) for k in raw if str(k) not in found)
    if unknown:
        problems = [f"unknown account {k!r}" for k in unknown]
        raise InvalidInput(f"No account has the external id {unknown[0]!r}.",
                           details={"contracts": problems})  # fmt: skip
    return {found[str(k)]: body for k, body in raw.items()}


def draft_changes(*, raw, contracts=None):
    """What the draft changes in the live catalog, as the import describes it, and the
    accounts it gives a contract (both validated on the way: InvalidInput with every
    problem)."""
    with draft_catalog(raw=raw, contracts=contracts) as result:
        changes = [change.describe() for change in result.changes] if result else []
    names = dict(Account.objects.filter(pk__in=list(contracts or {}))
                 .values_list("pk", "external_id"))  # fmt: skip
    return changes + [f"~ contract for account {names[pk]}" for pk in sorted(contracts or {})]


def last_full_month(now=None):
    """[first day of last month, first day of this month), in UTC."""
    now = (now or clock.now()).astimezone(UTC)
    end = datetime(now.year, now.month, 1, tzinfo=UTC)
    start = (end - timedelta(days=1)).replace(day=1)
    return start, end


def day_range(first_day, last_day):
    """[first day 00:00, the day after the last 00:00) in UTC: the days as people name them."""
    start = datetime.combine(first_day, time(), tzinfo=UTC)
    return start, datetime.combine(last_day, time(), tzinfo=UTC) + timedelta(days=1)


def check_chunk_size(chunk_size):
    if not 1 <= chunk_size <= MAX_CHUNK_SIZE:
        raise InvalidInput(
            f"A chunk holds 1 to {MAX_CHUNK_SIZE:,} accounts.",
            details={"chunk_size": [f"1-{MAX_CHUNK_SIZE}"]},
        )


def check_range(starts_at, ends_at):
    if starts_at >= ends_at:
        raise InvalidInput(
            "The range must end after it starts.", details={"ends_at": ["before start"]}
        )
    if ends_at > clock.now():
        raise InvalidInput(
            "The range must be in the past: the simulator replays usage that happened.",
            details={"ends_at": ["in the future"]},
        )


def select_accounts(*, starts_at, ends_at, plan=None, account_ids=None, sample=None, seed=None):
    """The accounts a run replays, by id: `account_ids` as given, else the subscribers of
    `plan` (a plan code, any version) in the range, else every account with credits or a
    subscription then; `sample` of them drawn with `seed` (the same seed, the same draw)."""
    if account_ids:
        found = set(Account.objects.filter(pk__in=account_ids).values_list("pk", flat=True))
        unknown = sorted(set(account_ids) - found)
        if unknown:
            raise InvalidInput(f"No account has id {unknown[0]}.", details={"accounts": unknown})
        ids = sorted(found)
    else:
        subscribed = Subscription.objects.filter(
            current_period_end__gt=starts_at, created_at__lt=ends_at
        )
        if plan:
            subscribed = subscribed.filter(plan__code=plan)
            if not subscribed.exists():
                raise InvalidInput(f"Nobody was on plan {plan!r} in the range.",
                                   details={"plan": ["no subscribers in the range"]})  # fmt: skip
            match = Q(pk__in=subscribed.values("account_id"))
        else:
            with_credits = Wallet.objects.filter(created_at__lt=ends_at).values("account_id")
            match = Q(pk__in=with_credits) | Q(pk__in=subscribed.values("account_id"))
        ids = sorted(Account.objects.filter(match).values_list("pk", flat=True))
    if sample is not None:
        if sample < 1:
            raise InvalidInput("A sample needs at least one account.", details={"sample": ["< 1"]})
        ids = sorted(random.Random(seed).sample(ids, min(sample, len(ids))))
    if not ids:
        raise InvalidInput("No account to simulate.", details={"accounts": ["none selected"]})
    return ids


# --- runs -------------------------------------------------------------------------------------


def start_run(*, title, draft_text, draft_filename="draft.yaml", contracts_text="",
              starts_at=None, ends_at=None, plan=None, account_ids=None, sample=None, seed=None,
              chunk_size=CHUNK_SIZE, acting_user=None):  # fmt: skip
    """Validate a what-if and queue it: the draft (and its contracts) are read and tried on
    the sandbox now, so a bad draft is refused here and not in a worker. Returns the queued
    run."""
    default_start, default_end = last_full_month()
    starts_at, ends_at = starts_at or default_start, ends_at or default_end
    check_range(starts_at, ends_at)
    check_chunk_size(chunk_size)
    raw = read_draft(text=draft_text, filename=draft_filename)
    contracts = read_contracts(text=contracts_text)
    changes = draft_changes(raw=raw, contracts=live_from(contracts, starts_at))
    selection = {k: v for k, v in {"plan": plan, "accounts": account_ids, "sample": sample,
                                   "seed": seed}.items() if v is not None}  # fmt: skip
    ids = select_accounts(starts_at=starts_at, ends_at=ends_at, **_selection_args(selection))
    with transaction.atomic(durable=True):
        run = SimulationRun.objects.create(
            title=title.strip() or draft_filename,
            draft=draft_text,
            draft_filename=draft_filename,
            contracts=contracts_text or "",
            changes=changes,
            starts_at=starts_at,
            ends_at=ends_at,
            selection=selection,
            account_ids=ids,
            chunk_size=chunk_size,
            created_by=acting_user,
            created_at=clock.now(),
        )
        outbox.publish(SIMULATE_TASK, run.pk)
    return run


def _selection_args(selection):
    keys = {"plan": "plan", "accounts": "account_ids", "sample": "sample", "seed": "seed"}
    return {keys[k]: v for k, v in selection.items()}


def _claim(run_id):
    now = clock.now()
    return SimulationRun.objects.filter(pk=run_id, status=Status.QUEUED).update(
        status=Status.RUNNING, started_at=now, heartbeat_at=now
    )


def start_chunks(*, run_id):
    """The Celery task's way through a run: claim it, then queue one task per chunk of
    accounts (`run_chunk`), so that a run uses every worker process. Returns whether it was
    claimed (not if cancelled before it started, or claimed already)."""
    with transaction.atomic(durable=True):
        if not _claim(run_id):
            return False
        run = SimulationRun.objects.get(pk=run_id)
        outbox.publish_many([(CHUNK_TASK, [run_id, index], {}) for index in range(run.chunks)])
    return True


def run_simulation(*, run_id, on_chunk=None):
    """All of a queued run in this process, chunk after chunk (commands, tests, and the
    task when there is one chunk). `on_chunk(run_id)` after each chunk's commit. Returns the
    run (None if it was not queued)."""
    with transaction.atomic(durable=True):
        if not _claim(run_id):
            return None
    for index in range(SimulationRun.objects.get(pk=run_id).chunks):
        if not run_chunk(run_id=run_id, index=index):
            break
        if on_chunk is not None:
            on_chunk(run_id)
    return SimulationRun.objects.get(pk=run_id)


def run_chunk(*, run_id, index):
    """Replay chunk `index` of a running run and write its lines and progress in one
    transaction; the chunk that completes the run writes its totals. Does nothing for a run
    that is no longer running or a chunk already written (a task delivered twice). A cancel
    or a failure ends the run with no lines kept. Returns whether the run goes on."""
    run = SimulationRun.objects.get(pk=run_id)
    if run.status != Status.RUNNING or index in run.chunks_done:
        return False
    if run.cancel_requested:
        return _save_chunk(run_id, index, None)
    try:
        accounts = run.account_ids[index * run.chunk_size : (index + 1) * run.chunk_size]
        [results] = simulate_chunks(
            raw=read_draft(text=run.draft, filename=run.draft_filename),
            contracts=read_contracts(text=run.contracts),
            account_ids=accounts, start=run.starts_at, end=run.ends_at,
            chunk_size=len(accounts),
        )  # fmt: skip
    except Exception as error:
        log.exception("simulation run %s failed", run_id)
        with transaction.atomic(durable=True):
            locked = _locked_run(run_id)
            if locked.status == Status.RUNNING:
                _clean_up(locked, Status.FAILED, error=f"{type(error).__name__}: {error}")
        return False
    return _save_chunk(run_id, index, results)


def _locked_run(run_id):
    # Why the lock: a cancel sets the flag while workers write, and chunks finish at once;
    # whoever holds the row decides, so no chunk is written after a cancel's clean-up, none
    # twice, and exactly one writes the totals.
    return SimulationRun.objects.select_for_update().get(pk=run_id)


def _save_chunk(run_id, index, results):
    with transaction.atomic(durable=True):
        run = _locked_run(run_id)
        if run.status != Status.RUNNING or index in run.chunks_done:
            return False
        if run.cancel_requested or results is None:
            _clean_up(run, Status.CANCELED)
            return False
        SimulationLine.objects.bulk_create([line_of(run, r) for r in results])
        run.chunks_done.append(index)
        run.accounts_done += len(results)
        run.heartbeat_at = clock.now()
        fields = ["chunks_done", "accounts_done", "heartbeat_at"]
        if len(run.chunks_done) == run.chunks:
            run.totals = totals_of(run.lines.all())
            run.status, run.finished_at = Status.DONE, clock.now()
            fields += ["totals", "status", "finished_at"]
        run.save(update_fields=fields)
    return run.status == Status.RUNNING


def _clean_up(run, status, *, error=""):
    run.lines.all().delete()
    run.status, run.error, run.finished_at = status, error, clock.now()
    run.accounts_done, run.chunks_done, run.totals = 0, [], {}
    run.save(update_fields=["status", "error", "finished_at", "accounts_done", "chunks_done",
                            "totals"])  # fmt: skip


def fail_stale_runs(*, now=None, on_chunk=None):
    """The job: a running run whose workers have not reported for STALE_AFTER (a worker
    died, was killed at its time limit, or lost its task) ends as failed, keeping no lines,
    instead of showing "running" for ever. Returns JobCounts (`stale_simulations`)."""
    now = now or clock.now()
    counts = JobCounts()
    silent = Q(status=Status.RUNNING, heartbeat_at__lt=now - STALE_AFTER)
    for run_id in SimulationRun.objects.filter(silent).values_list("pk", flat=True):
        with transaction.atomic(durable=True):
            run = SimulationRun.objects.filter(silent, pk=run_id).select_for_update().first()
            if run is None:
                continue  # it reported (or finished) meanwhile
            minutes = int(STALE_AFTER.total_seconds() // 60)
            _clean_up(run, Status.FAILED, error=f"Its workers stopped reporting for {minutes} "
                      "minutes (a worker died or hit its time limit). Start it again.")  # fmt: skip
            counts.stale_simulations += 1
        if on_chunk is not None:
            on_chunk(counts)
    return counts


def cancel_run(*, run_id, acting_user=None):
    """Stop a run: a queued one at once; a running one at its next chunk (its worker cleans
    up), or at once when its worker has gone silent. Finished runs stay as they are."""
    with transaction.atomic(durable=True):
        run = SimulationRun.objects.filter(pk=run_id).select_for_update().first()
        if run is None:
            raise NotFound("No simulation has that id.")
        if run.status in SimulationRun.FINISHED:
            return run
        stale = run.heartbeat_at is not None and run.heartbeat_at < clock.now() - STALE_AFTER
        if run.status == Status.QUEUED or stale:
            _clean_up(run, Status.CANCELED)
        else:
            run.cancel_requested = True
            run.save(update_fields=["cancel_requested"])
    log.info("simulation run %s cancelled by %s", run_id, acting_user)
    return run


# --- results ----------------------------------------------------------------------------------


def line_of(run, result):
    change = Change.of(result.real, result.draft)
    return SimulationLine(
        run=run,
        account_id=result.account_id,
        real=result.real.as_dict(),
        draft=result.draft.as_dict(),
        charged_change=change.credits,
        change_percent=change.percent,
        refused=change.refused,
        currency=change.currency,
        revenue_change=change.revenue,
    )


def figures_of(line):
    """A stored line's (real, draft) Figures."""
    return Figures.from_dict(line.real), Figures.from_dict(line.draft)


def totals_of(lines):
    """The run's totals, real and draft: every figure summed over the lines."""
    real, draft, changed = sum_figures(figures_of(line) for line in lines.iterator(chunk_size=2000))
    return {
        "accounts": lines.count(),
        "accounts_changed": changed,
        "real": real.as_dict(),
        "draft": draft.as_dict(),
    }
