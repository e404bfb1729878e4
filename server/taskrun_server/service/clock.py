"""The server's one notion of "now", so every timestamp in a request is consistent."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)
