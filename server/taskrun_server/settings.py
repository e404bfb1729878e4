"""One typed settings object, read from TASKRUN_* environment variables.

Everything a deployer may want to change lives here so that the rest of the code takes values,
not environment lookups.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Server configuration. Field `x` is read from `TASKRUN_X`."""

    model_config = SettingsConfigDict(env_prefix="TASKRUN_", frozen=True)

    database_url: str | None = Field(
        default=None,
        description=(
            "SQLAlchemy URL of the Postgres database, e.g. "
            "postgresql+psycopg://user@127.0.0.1:5432/taskrun. "
            "Unset: an embedded Postgres is started in `data_dir`."
        ),
    )
    read_database_url: str | None = Field(
        default=None,
        description=(
            "A Postgres hot standby of database_url for the list and aggregate reads "
            "(ReadTaskRuns, PaginateTaskRuns, CountTaskRuns, TaskRunHistory), which then see the "
            "primary as of the standby's replay lag. Unset: every read on the primary."
        ),
    )
    data_dir: Path = Field(
        default=Path(".taskrun/postgres"),
        description="Where the embedded Postgres keeps its files when no database_url is set.",
    )
    host: str = Field(default="127.0.0.1", description="Address the gRPC server binds to.")
    port: int = Field(default=50051, ge=0, le=65535, description="gRPC port; 0 picks a free one.")
    workers: int = Field(
        default=1,
        ge=1,
        le=64,
        description=(
            "Server processes sharing the port (SO_REUSEPORT), each with its own pool, listener "
            "and reaper: set it to the cores the replica may use. Needs a fixed port."
        ),
    )
    tls_cert_file: Path | None = Field(
        default=None, description="PEM certificate chain for TLS (with tls_key_file)."
    )
    tls_key_file: Path | None = Field(default=None, description="PEM private key for TLS.")
    tls_client_ca_file: Path | None = Field(
        default=None,
        description="PEM CA bundle: when set, clients must present a certificate it signed (mTLS).",
    )
    plaintext: bool | None = Field(
        default=None,
        description=(
            "Serve without TLS. Unset: allowed only on a loopback host; other hosts need "
            "certificates or an explicit true (e.g. behind a proxy that terminates TLS)."
        ),
    )
    auth_tokens: SecretStr | None = Field(
        default=None,
        description="Comma-separated bearer tokens; when set, every RPC but health needs one.",
    )
    auth_tokens_file: Path | None = Field(
        default=None, description="A file of bearer tokens, one per line (# comments allowed)."
    )
    migrate_on_start: bool = Field(
        default=True, description="Apply pending Alembic migrations before serving."
    )
    db_pool_size: int = Field(default=10, ge=1, description="Connections kept open to Postgres.")
    db_max_overflow: int = Field(
        default=10, ge=0, description="Extra connections allowed under load."
    )
    write_batch_size: int = Field(
        default=64,
        ge=1,
        le=1000,
        description=(
            "Concurrent CreateTaskRun or SetTaskRunState calls that may share one transaction "
            "(each still answered on its own). 1: every call its own transaction."
        ),
    )
    write_transactions: int = Field(
        default=1,
        ge=1,
        description=(
            "Write transactions of each kind (creates, state changes) a process runs at once; "
            "calls arriving while they are busy wait and go together in the next."
        ),
    )
    health_check_seconds: float = Field(
        default=2.0,
        gt=0,
        description="How often the database is probed; health is NOT_SERVING while it is down.",
    )
    max_concurrent_calls: int = Field(
        default=512,
        ge=1,
        description=(
            "Unary calls one process runs at once; beyond, calls are refused RESOURCE_EXHAUSTED "
            "with a retry delay (health checks are never refused)."
        ),
    )
    max_concurrent_streams: int = Field(
        default=2000,
        ge=1,
        description="Subscriber streams one process holds open; beyond, RESOURCE_EXHAUSTED.",
    )
    grace_period_seconds: float = Field(
        default=10.0, ge=0, description="How long in-flight calls may finish on shutdown."
    )
    log_level: str = Field(default="INFO", description="Python logging level name.")
    log_format: Literal["text", "json"] = Field(
        default="text",
        description="`json`: one JSON object per line (for log pipelines); `text`: key=value.",
    )
    access_log: bool = Field(
        default=True, description="Log one line per RPC: method, code, latency, task run id."
    )
    metrics_enabled: bool = Field(default=True, description="Serve Prometheus metrics over HTTP.")
    metrics_host: str = Field(default="127.0.0.1", description="Address the metrics port binds.")
    metrics_port: int = Field(
        default=9464, ge=0, le=65535, description="Prometheus port (/metrics); 0 picks a free one."
    )
    metrics_refresh_seconds: float = Field(
        default=5.0, gt=0, description="How often the queued and leased gauges are re-read."
    )
    dashboard_enabled: bool = Field(
        default=True, description="Serve the operators' web dashboard on its own HTTP port."
    )
    dashboard_host: str = Field(
        default="127.0.0.1",
        description=(
            "Address the dashboard binds. Off loopback it needs TLS (the gRPC port's "
            "certificate) or TASKRUN_PLAINTEXT=true, as the gRPC port does."
        ),
    )
    dashboard_port: int = Field(
        default=8080, ge=0, le=65535, description="Dashboard port; 0 picks a free one."
    )
    concurrency_slot_wait_seconds: float = Field(
        default=30.0,
        gt=0,
        description=(
            "The longest WAIT for a full tag's slot; runs are told 2-3 s, drawn at random as the "
            "reference does, or less when this is lower."
        ),
    )
    lease_seconds: float = Field(
        default=30.0,
        gt=0,
        description="How long a delivered task stays leased to its subscriber before redelivery.",
    )
    delivery_poll_seconds: float = Field(
        default=1.0,
        gt=0,
        description=(
            "Period of each server process's delivery timer: the longest a due run waits for a "
            "subscriber when no notification announced it (one query per tick, not per stream)."
        ),
    )
    heartbeat_timeout_seconds: float = Field(
        default=30.0,
        ge=0,
        description=(
            "How long a worker may go without a heartbeat while it runs a delivered task before "
            "the run is taken back (retried, or CRASHED). A run's policy may set its own. 0: never."
        ),
    )
    execution_timeout_seconds: float = Field(
        default=0.0,
        ge=0,
        description=(
            "How long one attempt may stay RUNNING before it is FAILED as TimedOut (and retried "
            "if it has retries left), for runs whose policy sets none. 0: no limit."
        ),
    )
    tally_compaction_seconds: float = Field(
        default=1.0,
        gt=0,
        description=(
            "How often the task-run tally (counts and history per hour, state and tags) folds in "
            "its pending changes. Reads are exact either way; more pending changes, slower reads."
        ),
    )
    reaper_interval_seconds: float = Field(
        default=1.0,
        gt=0,
        description="How often each server process looks for lapsed leases and timed-out runs.",
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()
