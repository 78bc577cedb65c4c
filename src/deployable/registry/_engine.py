"""Opening a registry database: the URL (password masked in every message), the engine (SQLite in WAL mode with a
busy timeout and immediate write transactions), and the schema brought to the head revision by Alembic."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError

from deployable.core.errors import DeployableError
from deployable.core.locks import file_lock

ENV = "DEPLOYABLE_REGISTRY"
BUSY_TIMEOUT_MS = 30_000
_ALEMBIC = Path(__file__).resolve().parent / "alembic"


def mask(url: str | URL) -> str:
    """The URL with its password replaced by ``***``."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return str(url)


def scrub(message: str, url: URL) -> str:
    """A driver's message with the password removed, wherever it appears."""
    return message.replace(url.password, "***") if url.password else message


def parse_url(location: str | Path) -> URL:
    """A registry location: a SQLAlchemy URL, or a path taken as a SQLite file."""
    s = str(location)
    if "://" not in s:
        return make_url(f"sqlite:///{Path(s).expanduser().resolve()}")
    try:
        return make_url(s)
    except ArgumentError as exc:
        raise DeployableError(
            f"registry: '{mask(s)}' is not a database URL",
            hint="e.g. sqlite:///path/registry.db or postgresql+psycopg://user@host/db",
        ) from exc


def _sqlite_file(url: URL) -> Path | None:
    return (
        Path(url.database)
        if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:")
        else None
    )


def make_engine(url: URL, *, create: bool) -> Engine:
    """An engine on ``url``; ``create=False`` refuses a SQLite file that does not exist (nothing is written)."""
    shown = mask(url)
    path = _sqlite_file(url)
    if path is not None and not path.is_file():
        if not create:
            raise DeployableError(
                f"registry: no registry at {path}",
                hint="release a run first, or pass --registry URL (or set DEPLOYABLE_REGISTRY)",
            )
        path.parent.mkdir(parents=True, exist_ok=True)
    kwargs: dict[str, Any] = {}
    if url.get_backend_name() == "postgresql":
        kwargs["connect_args"] = {"connect_timeout": 10}
    try:
        engine = create_engine(url, **kwargs)
    except (NoSuchModuleError, ImportError) as exc:
        raise DeployableError(
            f"registry: no driver for '{shown}' ({exc})", hint='pip install "deployable[registry]"'
        ) from exc
    if url.get_backend_name() == "sqlite":
        _sqlite_pragmas(engine)
    return engine


def _sqlite_pragmas(engine: Engine) -> None:
    """WAL (readers never wait for the writer), a busy timeout, and BEGIN IMMEDIATE: a write transaction takes the
    write lock when it starts, so two writers queue on the timeout instead of one failing with 'database is locked'
    when it upgrades its read lock."""

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = FULL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def _alembic_config(connection: Connection) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(_ALEMBIC))
    cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    cfg = _alembic_config(None)  # type: ignore[arg-type]
    return str(ScriptDirectory.from_config(cfg).get_current_head())


def _current(connection: Connection) -> str | None:
    from alembic.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()


def _known(revision: str) -> bool:
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError

    try:
        return ScriptDirectory.from_config(_alembic_config(None)).get_revision(revision) is not None  # type: ignore[arg-type]
    except CommandError:
        return False


@contextmanager
def _migration_lock(engine: Engine, url: URL) -> Iterator[Connection]:
    """One process migrates at a time (parallel first runs would otherwise create the same tables at once)."""
    path = _sqlite_file(url)
    if path is not None:
        with file_lock(path.with_name(f"{path.name}.migrate.lock")), engine.connect() as conn:
            yield conn
        return
    with engine.connect() as conn:
        if url.get_backend_name() == "postgresql":
            conn.execute(text("SELECT pg_advisory_lock(745321)"))
            conn.commit()
        try:
            yield conn
        finally:
            if url.get_backend_name() == "postgresql":
                conn.rollback()
                conn.execute(text("SELECT pg_advisory_unlock(745321)"))
                conn.commit()


def upgrade(engine: Engine, url: URL, *, to: str = "head") -> None:
    """Bring the schema to ``to`` (the head by default); refuse a database made by a newer deployable."""
    from alembic import command

    head = head_revision()
    shown = mask(url)
    try:
        with engine.connect() as conn:
            current = _current(conn)
        if current == head and to == "head":
            return
        with _migration_lock(engine, url) as conn:
            current = _current(conn)
            conn.rollback()
            if current is not None and not _known(current):
                raise DeployableError(
                    f"registry {shown}: its schema is version {current}, newer than this deployable's {head}",
                    hint="upgrade deployable to open it",
                )
            if current != head or to != "head":
                cfg = _alembic_config(conn)
                command.upgrade(cfg, to)
                conn.commit()
    except DBAPIError as exc:
        raise unreachable(url, exc) from exc


def unreachable(url: URL, exc: BaseException) -> DeployableError:
    first = scrub(str(getattr(exc, "orig", exc) or exc), url).strip().splitlines()
    return DeployableError(
        f"registry {mask(url)}: cannot open it ({first[0] if first else type(exc).__name__})",
        hint="check the URL, that the server is running, and the credentials",
    )


def default_location(config: Any | None = None) -> str:
    """``$DEPLOYABLE_REGISTRY``; without it, an error saying how to name a registry."""
    env = os.environ.get(ENV)
    if env:
        return env
    raise DeployableError(
        "registry: no registry given, and no deployable.yaml in the working directory",
        hint=f"pass --registry URL (a database URL, a registry.db file or a project folder), or set {ENV}",
    )
