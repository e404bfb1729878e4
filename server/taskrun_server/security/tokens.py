"""Bearer tokens: where they come from and how a presented one is checked.

Tokens are compared in constant time and never logged; only their count is.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from pathlib import Path


class TokenSet:
    """The tokens a server accepts. Empty means authentication is off."""

    def __init__(self, tokens: Iterable[str]) -> None:
        self._tokens = tuple(token.encode() for token in tokens if token)

    def __len__(self) -> int:
        return len(self._tokens)

    def __repr__(self) -> str:  # never the tokens themselves
        return f"TokenSet({len(self._tokens)} token(s))"

    def accepts(self, presented: str) -> bool:
        candidate = presented.encode()
        # Check every token, so that the time taken does not say which one nearly matched.
        matched = False
        for token in self._tokens:
            matched |= hmac.compare_digest(candidate, token)
        return matched

    def matching(self, presented: str) -> bytes | None:
        """The token `presented` is, if it is one (checked against every token, as `accepts`)."""
        candidate = presented.encode()
        found = None
        for token in self._tokens:
            if hmac.compare_digest(candidate, token):
                found = token
        return found

    def by_fingerprint(self, fingerprint: str) -> bytes | None:
        """The token with this fingerprint (see `fingerprint`), if it is still configured."""
        for token in self._tokens:
            if hmac.compare_digest(fingerprint_of(token), fingerprint):
                return token
        return None

    @classmethod
    def load(cls, inline: str | None, file: Path | None) -> TokenSet:
        """Comma-separated tokens from the environment, plus one per line from a file
        (blank lines and lines starting with # are skipped)."""
        tokens = [part.strip() for part in (inline or "").split(",")]
        if file is not None:
            for line in file.read_text().splitlines():
                line = line.strip()
                if line and not line.startswith("#"):
                    tokens.append(line)
        return cls(tokens)


def fingerprint_of(token: bytes) -> str:
    """A short name for a token that does not reveal it (for session cookies)."""
    return hashlib.sha256(b"taskrun-token:" + token).hexdigest()[:16]
