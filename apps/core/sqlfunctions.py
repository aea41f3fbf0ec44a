"""PostgreSQL functions kept in .sql files, rendered from Python constants and installed by
migrations (docs/ledger.md, "Where each rule lives").

An app declares its functions in `<app>/sql/__init__.py` as `FUNCTIONS`, each an `SQLFunction`
with a versioned name (`creditdesk_terms_v1`): a template file whose `{{ placeholder }}`s are
filled from the Python constants the Python engine uses too. A migration installs one with
`InstallSQLFunction(name=..., checksum=..., signature=...)`, the sha256 of the rendered text
and of its signature (arguments and result). `manage.py sqlfunctions --check` fails when a
rendered text is not the one the app's last migration for it installs (`--make` writes that
migration), or when a signature changes under a name already installed: old and new
processes run side by side during a deploy, so a new signature needs a new version.
"""

import hashlib
import re
from dataclasses import dataclass
from functools import cache, cached_property
from importlib import import_module, invalidate_caches
from pathlib import Path

from django.apps import apps
from django.db.migrations import Migration
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.operations.base import Operation
from django.db.migrations.writer import MigrationWriter

# `{{ name }}`: neither PL/pgSQL's `$$` quotes nor a `'{}'::jsonb` literal looks like it.
PLACEHOLDER = re.compile(r"\{\{\s*(\w+)\s*\}\}")
HEADER = re.compile(
    r"CREATE OR REPLACE FUNCTION\s+(\w+)\s*\((.*?)\)\s*(RETURNS\s.*?)\s+LANGUAGE\s", re.S
)
BODY = re.compile(r"\bAS \$\$(.*)\$\$;", re.S)


class SQLFunctionError(Exception):
    pass


def render(template, context, *, source="template"):
    """The template with each `{{ name }}` replaced by `context[name]`; an unknown name is an
    error (a typo must not install a function that fails at run time)."""

    def value(match):
        name = match.group(1)
        if name not in context:
            raise SQLFunctionError(f"{source}: unknown placeholder {{{{{name}}}}}")
        return str(context[name])

    text = PLACEHOLDER.sub(value, template)
    if "{{" in text or "}}" in text:
        raise SQLFunctionError(f"{source}: a placeholder is not of the form {{{{ name }}}}")
    return text


def sha256(text):
    return hashlib.sha256(text.encode()).hexdigest()


def signature_of(text):
    """The part of a function that cannot change under its name: its name, arguments and
    result, whitespace and case aside."""
    match = HEADER.search(text)
    if match is None:
        raise SQLFunctionError("no 'CREATE OR REPLACE FUNCTION name(...) RETURNS ... LANGUAGE'")
    return " ".join(" ".join(match.groups()).lower().split())


@dataclass(frozen=True)
class SQLFunction:
    """One function: `name` and `version` make the SQL name (`<name>_v<version>`); `template`
    a file beside the declaring module; `context` returns the placeholders' values, read from
    the Python constants each time (so a changed constant changes the rendering)."""

    app_label: str
    name: str
    version: int
    template: Path
    context: object  # () -> dict

    @property
    def sql_name(self):
        return f"{self.name}_v{self.version}"

    def render(self):
        context = {**self.context(), "name": self.sql_name}
        return render(read(self.template), context, source=self.template.name)

    def body(self, context):
        """The function's body (between `AS $$` and `$$;`) rendered with `context` over the
        usual placeholders: a `LANGUAGE sql` function's query, to run where the function is
        not installed (SQLite)."""
        match = BODY.search(read(self.template))
        if match is None:
            raise SQLFunctionError(f"{self.template.name}: no body between 'AS $$' and '$$;'")
        return render(match.group(1), {**self.context(), **context}, source=self.template.name)

    def operation(self):
        """The migration operation that installs the current rendering."""
        text = self.render()
        return InstallSQLFunction(
            name=self.sql_name, checksum=sha256(text), signature=sha256(signature_of(text))
        )


def declared():
    """Every installed app's `sql.FUNCTIONS`."""
    functions = []
    for config in apps.get_app_configs():
        try:
            module = import_module(f"{config.name}.sql")
        except ModuleNotFoundError as error:
            if error.name != f"{config.name}.sql":
                raise
            continue
        functions += getattr(module, "FUNCTIONS", [])
    return functions


@cache
def read(template):
    """A template's text, read once per process (SQLite renders the terms query per call)."""
    return template.read_text()


def base_name(sql_name):
    return sql_name.rsplit("_v", 1)[0]


class Installs:
    """The InstallSQLFunction operations in the migrations on disk, in migration order."""

    def __init__(self, loader=None):
        if loader is None:
            loader = MigrationLoader(None, ignore_no_migrations=True)
        self.loader = loader

    @cached_property
    def ordered(self):
        """[(migration key, operation)] over every app, each app's in its migration order."""
        graph, found = self.loader.graph, []
        for leaf in graph.leaf_nodes():
            for key in graph.forwards_plan(leaf):
                migration = self.loader.disk_migrations.get(key)
                for operation in getattr(migration, "operations", []):
                    if isinstance(operation, InstallSQLFunction) and (key, operation) not in found:
                        found.append((key, operation))
        return found

    def of(self, name):
        """Installs of every version of the function `name` (a base name), in order."""
        return [(key, op) for key, op in self.ordered if base_name(op.name) == name]

    def current(self, function):
        """The last install of `function`'s base name, if it installs the current rendering."""
        found = self.of(function.name)
        wanted = function.operation()
        if found and found[-1][1] == wanted:
            return found[-1]
        return None

    def problems(self, functions=None):
        """What stops the migrations from installing each declared function as rendered now."""
        found = []
        for function in declared() if functions is None else functions:
            wanted = function.operation()
            for key, op in self.of(function.name):
                if op.name == wanted.name and op.signature != wanted.signature:
                    found.append(
                        f"{function.sql_name}: its arguments or result differ from those "
                        f"{key[0]}.{key[1]} installed; a function's signature never changes "
                        f"under its name: raise its version to {function.version + 1}."
                    )
            if self.current(function) is None:
                found.append(
                    f"{function.sql_name}: {function.template.name} renders a text no migration "
                    "installs; run `manage.py sqlfunctions --make`."
                )
        return found


def write_migrations(installs, *, name="sql_functions"):
    """For each app with a function whose current rendering no migration installs, write a
    migration that installs it (after the app's latest). Returns the paths written. Refuses
    while a signature changed under an installed name (see `Installs.problems`)."""
    stale = [f for f in declared() if installs.current(f) is None]
    refused = [p for p in installs.problems(stale) if "signature" in p]
    if refused:
        raise SQLFunctionError("\n".join(refused))
    written = []
    for app_label in sorted({f.app_label for f in stale}):
        leaves = installs.loader.graph.leaf_nodes(app_label)
        number = max((int(leaf[1].split("_")[0]) for leaf in leaves), default=0) + 1
        migration = Migration(f"{number:04d}_{name}", app_label)
        migration.dependencies = list(leaves)
        migration.operations = [f.operation() for f in stale if f.app_label == app_label]
        writer = MigrationWriter(migration)
        Path(writer.path).write_text(writer.as_string())
        written.append(writer.path)
    invalidate_caches()  # a loader in this process must find the new files
    return written


class InstallSQLFunction(Operation):
    """Install (CREATE OR REPLACE) the declared function `name` as its template renders now,
    which must be the text of `checksum`. PostgreSQL only; nothing on SQLite.

    A migration written before the template (or a constant it renders) changed carries an old
    checksum: it is superseded, and does nothing, when the last migration on disk that installs
    the function carries the current one (a database migrated from scratch installs the
    function once, in its current form). Otherwise the rendering changed without a migration:
    an error says to run the generator.

    Backwards: the first install of a name drops the function; a later one leaves the body as
    it is (the previous text is not kept anywhere to go back to: changing it again is a new
    migration).
    """

    reversible = True
    reduces_to_sql = True

    def __init__(self, name, checksum, signature):
        self.name, self.checksum, self.signature = name, checksum, signature

    def deconstruct(self):
        kwargs = {"name": self.name, "checksum": self.checksum, "signature": self.signature}
        return (self.__class__.__name__, [], kwargs)

    def __eq__(self, other):
        return isinstance(other, InstallSQLFunction) and self.deconstruct() == other.deconstruct()

    def __hash__(self):
        return hash(self.deconstruct()[2]["checksum"])

    def describe(self):
        return f"Install the SQL function {self.name}"

    @property
    def migration_name_fragment(self):
        return f"sql_{self.name}"

    def state_forwards(self, app_label, state):
        pass

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor != "postgresql":
            return
        function = next((f for f in declared() if f.name == base_name(self.name)), None)
        if function is None:
            raise SQLFunctionError(f"{self.name}: no app declares a function of that name")
        if function.operation() == self:
            schema_editor.execute(function.render(), params=None)
            return
        if Installs().current(function) is not None:
            return  # superseded: a later migration installs the current text
        raise SQLFunctionError(
            f"{self.name}: {function.template.name} no longer renders the text this migration "
            "installs, and no later migration installs the current one: run "
            "`manage.py sqlfunctions --make`, then migrate."
        )

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor != "postgresql":
            return
        earlier = [op for _, op in Installs().ordered if op.name == self.name]
        if earlier and earlier[0] == self:
            schema_editor.execute(f"DROP FUNCTION IF EXISTS {self.name}", params=None)
