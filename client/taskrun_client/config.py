"""Client configuration: where the server is, how to reach it, and how patient to be."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

MAX_ATTEMPTS = 5
"""gRPC's own ceiling: a retry policy's maxAttempts above 5 is treated as 5."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """gRPC's retry policy for the calls that are safe to repeat: on UNAVAILABLE, up to
    `max_attempts` attempts (gRPC allows at most 5), waiting a random time up to the current
    backoff between them, or as long as the server's retry pushback says. Every call also waits
    for a connection (wait-for-ready) within its deadline, so a restart of a few seconds costs
    no attempt at all."""

    max_attempts: int = MAX_ATTEMPTS
    initial_backoff: float = 0.2
    max_backoff: float = 2.0
    multiplier: float = 2.0

    def __post_init__(self) -> None:
        if not 1 <= self.max_attempts <= MAX_ATTEMPTS:
            raise ValueError(f"max_attempts must be between 1 and {MAX_ATTEMPTS} (gRPC's limit)")
        if self.initial_backoff <= 0 or self.max_backoff <= 0 or self.multiplier < 1:
            raise ValueError("backoffs must be positive and the multiplier at least 1")


@dataclass(frozen=True, slots=True)
class ClientConfig:
    target: str = "127.0.0.1:50051"
    # TLS: set `tls` (and `root_certificates` for a private CA). Plaintext otherwise.
    tls: bool = False
    root_certificates: bytes | None = None
    # mTLS: the client's PEM certificate chain and private key, when the server asks for one.
    certificate_chain: bytes | None = None
    private_key: bytes | None = None
    # Sent as "authorization: Bearer <token>" on every call.
    token: str | None = None
    # Deadline of each unary call, in seconds.
    timeout: float = 10.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    # Wait for a connection within the deadline instead of failing at once with UNAVAILABLE
    # when there is none: rides through server restarts. Off, a misconfigured or unreachable
    # target fails fast (the CLI turns it off).
    wait_for_ready: bool = True

    @classmethod
    def from_env(cls, **overrides: Any) -> ClientConfig:
        """The target and token as the CLI reads them: TASKRUN_TARGET (default
        127.0.0.1:50051) and TASKRUN_TOKEN; `overrides` win over both."""
        found: dict[str, Any] = {}
        if target := os.environ.get("TASKRUN_TARGET"):
            found["target"] = target
        if token := os.environ.get("TASKRUN_TOKEN"):
            found["token"] = token
        return cls(**(found | overrides))

    def metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.token}"),) if self.token else ()
