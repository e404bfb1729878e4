"""Client configuration: where the server is, how to reach it, and how patient to be."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Retries on UNAVAILABLE, with exponential backoff, for calls that are safe to repeat."""

    max_attempts: int = 5
    initial_backoff: float = 0.1
    max_backoff: float = 2.0
    multiplier: float = 2.0

    def delays(self) -> list[float]:
        """The waits between attempts."""
        out, delay = [], self.initial_backoff
        for _ in range(self.max_attempts - 1):
            out.append(min(delay, self.max_backoff))
            delay *= self.multiplier
        return out


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

    def metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.token}"),) if self.token else ()
