"""Analyse a scene and read what came out: the findings of one code, exactly one of them, a connection's
verdict (the rule tests, tests/test_rules_*.py, and the scenes they share)."""

from __future__ import annotations

import pcapmtu


def run(*, host=None, container=None, **kw):
    """`pcapmtu.analyze` of these captures; a crashed detector (E900) fails the test."""
    result = pcapmtu.analyze(host=host, container=container, **kw)
    crashed = [f.message for f in result.findings_list if f.code == "E900"]
    assert not crashed, crashed
    return result


def found(result, code: str, capture: str | None = None, conn: int | None = None) -> list:
    """The findings of `code` (in that capture, about that connection)."""
    return [
        f
        for f in result.findings_list
        if f.code == code and (capture is None or f.capture == capture) and (conn is None or f.conn == conn)
    ]


def one(result, code: str, capture: str | None = None, conn: int | None = None):
    """The one finding `found` gives; none or several fail the test, listing every finding."""
    hits = found(result, code, capture, conn)
    assert len(hits) == 1, (
        code,
        capture,
        conn,
        [(f.code, f.capture, f.conn, f.message) for f in result.findings_list],
    )
    return hits[0]


def codes(result) -> set[str]:
    return {f.code for f in result.findings_list}


def verdict_of(result, capture: str, conn: int) -> tuple[str, str]:
    """(verdict, reason) of one connection."""
    v = result.verdicts
    row = v[(v["capture"] == capture) & (v["conn"] == conn)]
    assert len(row) == 1, v
    return row.iloc[0]["verdict"], row.iloc[0]["reason"]
