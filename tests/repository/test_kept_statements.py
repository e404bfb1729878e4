"""Statements kept per question: built once, the most recently used kept, within a bound."""

from __future__ import annotations

from taskrun_server.repository.kept_statements import MAX_KEY_CHARS, KeptStatements


def test_a_question_asked_again_is_not_built_again() -> None:
    kept = KeptStatements(kept=4)
    built: list[str] = []

    def build() -> str:
        built.append("x")
        return "statement"

    assert [kept.get("count", "q", build) for _ in range(3)] == ["statement"] * 3
    assert built == ["x"]


def test_a_question_answered_none_is_kept_too() -> None:
    kept = KeptStatements(kept=4)
    calls: list[int] = []
    for _ in range(2):
        assert kept.get("tallied", "q", lambda: calls.append(1)) is None
    assert calls == [1]


def test_the_same_query_as_another_kind_is_another_question() -> None:
    kept = KeptStatements(kept=4)
    kept.get("count", "q", lambda: "count")
    assert kept.get("history", "q", lambda: "history") == "history"


def test_beyond_the_bound_the_least_recently_used_question_goes() -> None:
    kept = KeptStatements(kept=2)
    kept.get("count", "a", lambda: "a1")
    kept.get("count", "b", lambda: "b1")
    kept.get("count", "a", lambda: "a2")  # a is now the most recent
    kept.get("count", "c", lambda: "c1")  # b goes
    assert kept.get("count", "a", lambda: "a3") == "a1"
    assert kept.get("count", "b", lambda: "b2") == "b2"


def test_a_question_too_long_to_keep_is_built_each_time() -> None:
    kept = KeptStatements(kept=4)
    long_query = ["id"] * 2000
    assert len(repr(long_query)) > MAX_KEY_CHARS
    built: list[int] = []
    for _ in range(2):
        kept.get("count", long_query, lambda: built.append(1))
    assert built == [1, 1]
    short: list[int] = []
    for _ in range(2):
        kept.get("count", ["id"], lambda: short.append(1))
    assert short == [1]
