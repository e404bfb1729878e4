"""Who may use the dashboard, and proof that a form came from it.

Without bearer tokens configured, everyone who can reach the port may (as with the gRPC port).
With them, the login page takes a token once and sets a session cookie (HttpOnly,
SameSite=Strict; Secure over TLS): the expiry, a nonce and the token's fingerprint, signed
with HMAC under the token itself. Any process or replica with the same tokens accepts it, and
removing a token ends its sessions.

Every form carries a CSRF token bound to the session (or, without sessions, to this process),
and every POST must bring it back; a POST whose Origin is another site is refused before that.
"""

from __future__ import annotations

import hmac
import os
import time
from dataclasses import dataclass
from hashlib import sha256

from taskrun_server.security.tokens import TokenSet, fingerprint_of

COOKIE = "taskrun_session"
SESSION_SECONDS = 12 * 3600


@dataclass(frozen=True, slots=True)
class Session:
    """A signed-in browser (or, when no tokens are configured, anyone)."""

    key: bytes
    nonce: str


class Sessions:
    def __init__(self, tokens: TokenSet) -> None:
        self._tokens = tokens
        self._anonymous = Session(key=os.urandom(32), nonce="anonymous")

    @property
    def required(self) -> bool:
        return bool(len(self._tokens))

    def login(self, presented: str, now: float | None = None) -> str | None:
        """The cookie for a valid token; None for anything else."""
        token = self._tokens.matching(presented.strip())
        if token is None:
            return None
        expires = int((now or time.time()) + SESSION_SECONDS)
        body = f"{expires}.{os.urandom(12).hex()}.{fingerprint_of(token)}"
        return f"{body}.{_sign(token, body)}"

    def verify(self, cookie: str | None, now: float | None = None) -> Session | None:
        """The session a request belongs to, or None (sign in first)."""
        if not self.required:
            return self._anonymous
        if not cookie or cookie.count(".") != 3:
            return None
        body, _, signature = cookie.rpartition(".")
        expires, nonce, fingerprint = body.split(".")
        token = self._tokens.by_fingerprint(fingerprint)
        if token is None or not hmac.compare_digest(_sign(token, body), signature):
            return None
        if not expires.isdigit() or int(expires) < (now or time.time()):
            return None
        return Session(key=token, nonce=nonce)

    @staticmethod
    def csrf_token(session: Session) -> str:
        return _sign(session.key, f"csrf.{session.nonce}")

    def csrf_ok(self, session: Session, presented: str | None) -> bool:
        return bool(presented) and hmac.compare_digest(self.csrf_token(session), presented or "")


def _sign(key: bytes, message: str) -> str:
    return hmac.new(key, message.encode(), sha256).hexdigest()
