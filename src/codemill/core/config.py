"""Typed settings: ``codemill.toml`` in the working directory plus ``CODEMILL_*`` variables.

Precedence, highest first: environment variables (nested with ``__``, e.g.
``CODEMILL_CATALOG__URI``), then the TOML file, then defaults. The resolved settings are
hashed (``config_hash``) and stored with every run.

Example ``codemill.toml`` for a Postgres catalog and S3-compatible warehouse::

    home = "/data/codemill"
    [catalog]
    kind = "sql"
    uri = "postgresql+psycopg2://user:pass@db:5432/codemill"
    warehouse = "s3://bucket/warehouse"

or a REST catalog::

    [catalog]
    kind = "rest"
    uri = "https://iceberg.example.com"
    [catalog.properties]
    credential = "client-id:secret"
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from codemill.core.errors import ConfigError
from codemill.core.ids import content_id

CONFIG_FILE = "codemill.toml"


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class CatalogConfig(_Section):
    """Where the Iceberg catalog lives."""

    kind: Literal["sql", "rest"] = "sql"
    """``sql`` (SQLite by default, or Postgres via ``uri``) or ``rest``."""
    uri: str | None = None
    """SQLAlchemy URI for ``sql`` or the REST endpoint; default: SQLite in the home. For a
    catalog shared by workers on several machines, PostgreSQL (the ``postgres`` extra):
    ``postgresql+psycopg2://user@host:5432/db``, or ``CODEMILL_CATALOG__URI``. A URI that
    cannot be used is a one-line ``CatalogError`` when the ledger opens."""
    warehouse: str | None = None
    """Warehouse location (``file://``, ``s3://`` ...); default: ``<home>/warehouse``."""
    namespace: str = "codemill"
    """Iceberg namespace holding codemill's tables."""
    properties: dict[str, str] = Field(default_factory=dict)
    """Extra catalog properties passed through to pyiceberg (credentials, S3 endpoint)."""


class WriterConfig(_Section):
    """How the batched ledger writer flushes."""

    batch_rows: int = 50_000
    """Flush when this many rows are buffered for one table."""
    flush_seconds: float = 5.0
    """Flush a non-empty buffer when it is older than this (checked on each add)."""
    max_retries: int = 20
    """Commit attempts on conflict before raising ``CommitError`` with the rows."""
    expire_every: int = 10
    """Expire old snapshots of a table after this many commits by one writer (or when it
    holds ``keep_snapshots + expire_every``). Every commit rewrites metadata listing all
    live snapshots: measured, 100 let commit cost swing 3-4x; 10 keeps it flat."""
    commit_lock: bool = True
    """Writers sharing a SQLite catalog queue on a file lock beside it for each commit
    instead of conflicting and retrying (turn off where ``flock`` is not reliable)."""
    keep_snapshots: int = 10
    """How many recent snapshots survive expiry (time travel window)."""


class SandboxConfig(_Section):
    """Default limits of a sandbox."""

    backend: str = "bwrap"
    """``bwrap`` (isolated; default) or ``process`` (no isolation; trusted dev only)."""
    uid: int = 65534
    """The unprivileged uid/gid commands run as."""
    memory_mb: int = 4096
    pids: int = 512
    cpu_quota: float = 1.0
    """CPU cores' worth of time per sandbox (cgroup cpu quota)."""
    timeout_s: float = 600.0
    output_limit: int = 1_000_000
    """Bytes of stdout/stderr kept per command; the rest is cut with a note."""
    disk_mb: int = 2048
    """Largest file a command may write (RLIMIT_FSIZE) and size of its scratch tmpfs."""


class ExecutorConfig(_Section):
    """How assets run."""

    kind: Literal["local", "ray"] = "local"
    workers: int = 0
    """Worker processes; 0 means one per CPU."""
    ray_address: str | None = None
    """Connect to an existing Ray cluster; None starts a local one."""


class BaselineConfig(_Section):
    """How an environment's baseline looks for flaky tests after its full run(s). Not a
    settings section: ``codemill.testing.baseline`` runs it and the builder's
    ``BuildConfig`` carries it, so it lives here, below both (like ``SandboxConfig``)."""

    repeat_fraction: float = 0.4
    """Wall time the repeat may take, as a fraction of the first full run's (the build then
    costs about 1.4 suite runs instead of k)."""
    min_repeat_s: float = 2.0
    """Repeat budget never below this many seconds (a suite that fits is repeated whole:
    raise it to buy a second full look at quick suites, at the cost of the ratio)."""
    workers: int = 0
    """Forks that run shards of the repeat at the same time; 0: a quarter of the cores this
    process may use, at most 4 (1 on a machine of under 8: runs that compete for a CPU make
    timing-sensitive tests look flaky, and builds may run side by side)."""

    def worker_count(self) -> int:
        if self.workers > 0:
            return self.workers
        return max(1, min(4, len(os.sched_getaffinity(0)) // 4))


def available_cpus() -> int:
    """The CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


class Settings(BaseSettings):
    """All of codemill's settings. Paths are relative to the working directory."""

    model_config = SettingsConfigDict(
        env_prefix="CODEMILL_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    home: Path = Path(".codemill")
    """Where the ledger, snapshots, environments and caches live."""
    catalog: CatalogConfig = CatalogConfig()
    writer: WriterConfig = WriterConfig()
    sandbox: SandboxConfig = SandboxConfig()
    executor: ExecutorConfig = ExecutorConfig()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment beats the TOML file, which arrives as init kwargs.
        return (env_settings, init_settings)

    @property
    def config_hash(self) -> str:
        return content_id(self.model_dump(mode="json"))

    def catalog_uri(self) -> str:
        return self.catalog.uri or f"sqlite:///{(self.home / 'catalog.db').resolve()}"

    def warehouse(self) -> str:
        if self.catalog.warehouse:
            return self.catalog.warehouse
        return (self.home / "warehouse").resolve().as_uri()


def load_settings(path: str | Path | None = None, **overrides: Any) -> Settings:
    """Load settings from ``path`` (default ``./codemill.toml`` or ``$CODEMILL_CONFIG``),
    the environment and ``overrides``; raise ``ConfigError`` with one clear line."""
    file = Path(path or os.environ.get("CODEMILL_CONFIG") or CONFIG_FILE)
    data: dict[str, Any] = {}
    if file.exists():
        try:
            data = tomllib.loads(file.read_text())
        except (tomllib.TOMLDecodeError, OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{file}: not valid TOML: {exc}") from exc
    elif path is not None:
        raise ConfigError(f"{file}: config file not found")
    data.update(overrides)
    try:
        return Settings(**data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        where = file if file.exists() else "settings"
        raise ConfigError(f"{where}: {loc}: {first['msg']}") from exc
