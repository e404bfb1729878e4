"""Translate integrity errors from Postgres into the domain's errors, by constraint name."""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy.exc import IntegrityError

from taskrun_server.domain.errors import TaskRunServiceError


def constraint_name(error: IntegrityError) -> str | None:
    diag = getattr(error.orig, "diag", None)
    return getattr(diag, "constraint_name", None)


def translate_integrity_error(
    error: IntegrityError, known: Mapping[str, TaskRunServiceError]
) -> TaskRunServiceError | None:
    """The domain error for a violated constraint we anticipated, else None."""
    name = constraint_name(error)
    return known.get(name) if name else None
