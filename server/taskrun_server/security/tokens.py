"""Bearer tokens: where they come from and how a presented one is checked.

Tokens are compared in constant time and never logged; only their count is.
"""

from __future__ import annotations

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
