"""`simulate_pricing`: what a draft catalog would have done to real customers, in a terminal
or a CI job (docs/simulator.md). Writes nothing: not even a run to the database."""

import csv
import json
import sys
from datetime import datetime, timedelta
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from apps.accounts.models import Account
from apps.core import humanize
from apps.core.errors import InvalidInput
from apps.simulation import report
from apps.simulation.replay import live_from, simulate_chunks
from apps.simulation.services import (
    CHUNK_SIZE,
    check_chunk_size,
    check_range,
    day_range,
    draft_changes,
    last_full_month,
    read_contracts,
    read_draft,
    select_accounts,
)

MOST_AFFECTED = 10


def _day(text):
    try:
        return datetime.strptime(text, "%Y-%m-%d").date()
    except ValueError:
        raise CommandError(f"{text!r} is not a date (YYYY-MM-DD).") from None


class Command(BaseCommand):
    help = (
        "Replay real usage over a past range under a draft catalog file and print, per account "
        "and in total, what it would have charged, refused, billed and recognised beside what "
        "really happened. Writes nothing."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--catalog",
            help="The draft catalog file (.yaml, .yml or .json); - for stdin. Default: the "
            "live catalog (to try contracts alone).",
        )
        parser.add_argument(
            "--contracts",
            help="Draft contracts: a YAML or JSON file mapping account external ids to "
            "contract bodies (docs/contracts.md).",
        )
        parser.add_argument(
            "--from",
            dest="first",
            type=_day,
            help="First day of the range (UTC). Default: last full month.",
        )
        parser.add_argument(
            "--to", dest="last", type=_day, help="Last day of the range, included (UTC)."
        )
        parser.add_argument("--plan", help="Only the subscribers of this plan code in the range.")
        parser.add_argument("--accounts", help="Only these account ids, comma-separated.")
        parser.add_argument("--sample", type=int, help="A random sample of this many accounts.")
        parser.add_argument(
            "--seed",
            type=int,
            default=0,
            help="The sample's seed (the same seed, the same accounts).",
        )
        parser.add_argument("--format", choices=("table", "csv", "json"), default="table")
        parser.add_argument(
            "--workers", type=int, default=1, help="Processes replaying at once (PostgreSQL)."
        )
        parser.add_argument("--chunk-size", type=int, default=CHUNK_SIZE,
                            help="Accounts replayed together (memory grows with it).")  # fmt: skip

    def handle(self, *args, catalog, contracts, first, last, plan, accounts, sample, seed,
               format, workers, chunk_size, **options):  # fmt: skip
        if not catalog and not contracts:
            raise CommandError("Give a draft: --catalog, --contracts or both.")
        text, name = self._read(catalog) if catalog else (None, "the live catalog")
        starts_at, ends_at = self._range(first, last)
        try:
            check_range(starts_at, ends_at)
            check_chunk_size(chunk_size)
            raw = read_draft(text=text, filename=name) if text is not None else None
            contracts = read_contracts(text=self._read(contracts)[0]) if contracts else {}
            changes = draft_changes(raw=raw, contracts=live_from(contracts, starts_at))
            ids = select_accounts(starts_at=starts_at, ends_at=ends_at, plan=plan,
                                  account_ids=self._ids(accounts), sample=sample,
                                  seed=seed)  # fmt: skip
        except InvalidInput as exc:
            problems = [f"  {p}" for values in exc.details.values() for p in values]
            raise CommandError("\n".join([f"{name}: {exc.message}", *problems])) from None
        names = dict(Account.objects.filter(pk__in=ids).values_list("pk", "external_id"))
        lines = []
        for results in simulate_chunks(raw=raw, contracts=contracts, account_ids=ids,
                                       start=starts_at, end=ends_at, chunk_size=chunk_size,
                                       workers=workers):  # fmt: skip
            lines += [(names[r.account_id], r) for r in results]
        header = {"draft": name, "from": starts_at, "to": ends_at, "changes": changes}
        getattr(self, f"_{format}")(header, lines)

    def _read(self, file):
        if file == "-":
            return sys.stdin.read(), "stdin"
        path = Path(file)
        if not path.is_file():
            raise CommandError(f"{file}: no such file")
        return path.read_text(encoding="utf-8"), path.name

    def _range(self, first, last):
        if first is None and last is None:
            return last_full_month()
        if first is None or last is None:
            raise CommandError("Give both --from and --to, or neither (last full month).")
        return day_range(first, last)

    def _ids(self, accounts):
        if not accounts:
            return None
        try:
            return [int(a) for a in accounts.split(",") if a.strip()]
        except ValueError:
            raise CommandError("--accounts takes account ids separated by commas.") from None

    def _table(self, header, lines):
        out = self.stdout
        last = header["to"] - timedelta(days=1)
        out.write(f"Draft {header['draft']}, usage from {header['from']:%Y-%m-%d} to "
                  f"{last:%Y-%m-%d}, {len(lines):,} accounts.")  # fmt: skip
        out.write("What the draft changes:" if header["changes"] else "The draft changes nothing.")
        for change in header["changes"]:
            out.write("  " + change.replace("\n", "\n  "))
        real, draft, changed = report.sum_figures((r.real, r.draft) for _, r in lines)
        rows = [("", "Real", "Draft"), *report.totals_table(real, draft)]
        widths = [max(len(str(row[i])) for row in rows) for i in range(3)]
        for row in rows:
            out.write("  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)))
        out.write(f"{changed:,} of {len(lines):,} accounts change.")
        affected = sorted(
            ((account, report.Change.of(r.real, r.draft)) for account, r in lines),
            key=lambda item: (-abs(item[1].credits), -item[1].refused, item[0]),
        )
        affected = [(a, c) for a, c in affected if c.changed][:MOST_AFFECTED]
        if affected:
            out.write("Most affected:")
        for account, change in affected:
            percent = f" ({change.percent:+}%)" if change.percent is not None else ""
            refused = f", {change.refused:,} refused" if change.refused else ""
            sign = "+" if change.credits > 0 else ""
            credits = humanize.credits(change.credits)
            out.write(f"  {account}: {sign}{credits}{percent}{refused}")

    def _csv(self, header, lines):
        writer = csv.writer(self.stdout)
        writer.writerow(report.HEADER)
        for account, r in lines:
            writer.writerow(report.row(r.account_id, account, r.real, r.draft))

    def _json(self, header, lines):
        real, draft, changed = report.sum_figures((r.real, r.draft) for _, r in lines)
        document = {
            **header,
            "accounts": len(lines),
            "accounts_changed": changed,
            "totals": {"real": real.as_dict(), "draft": draft.as_dict()},
            "lines": [
                dict(
                    zip(
                        report.HEADER,
                        report.row(r.account_id, account, r.real, r.draft),
                        strict=True,
                    )
                )
                for account, r in lines
            ],  # fmt: skip
        }
        self.stdout.write(json.dumps(document, indent=2, default=str))
