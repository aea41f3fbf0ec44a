"""One statement on Django's connection with the least Python around it, for the calls made
on every API request (the consume and check functions)."""

import threading

import psycopg
from django.db import DEFAULT_DB_ALIAS, connections

_local = threading.local()  # Django's connections are per thread too


def fetch_all(sql, args, *, db=None):
    """The rows of `sql`, its arguments bound by the server (psycopg sends them beside the
    statement, where Django's cursors quote each into its text in Python), the rows sent
    back in binary. Errors are Django's, as from any cursor. With queries logged (DEBUG, or
    a test counting them) it goes through Django's debug cursor, so it is logged and
    counted. `db`: Django's connection, if the caller has it at hand (each
    `connections[...]` looks the thread's up again)."""
    db = connections[DEFAULT_DB_ALIAS] if db is None else db
    db.ensure_connection()
    cursor = _cursor(db)
    if db.queries_logged:
        cursor = db.make_debug_cursor(cursor)
    with db.wrap_database_errors:
        cursor.execute(sql, args)
        return cursor.fetchall()


def _cursor(db):
    """One cursor per connection, kept for its next statement: a new cursor finds again the
    adapter that dumps each argument's type and loads each column's, about a third of the
    call's CPU in process."""
    kept = getattr(_local, "cursors", None)
    if kept is None:
        kept = _local.cursors = {}
    cursor = kept.get(db.alias)
    if cursor is None or cursor.connection is not db.connection:
        cursor = kept[db.alias] = psycopg.Cursor(db.connection)
        # Rows in binary: psycopg's C loaders read them, where Django's loader for text
        # timestamps is Python (the time zone is the session's, UTC, as Django sets it).
        cursor.format = psycopg.pq.Format.BINARY
    return cursor
