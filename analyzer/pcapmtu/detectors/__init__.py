"""Detectors: small pure functions with stable codes, like linter rules.

Each detector is registered with `@rule(...)`, which carries its code, name, default severity, a
one-line message template, the fix hint, the why, and (for per-connection conclusions) the verdict it
implies. A detector yields `Hit`s; `run()` turns them into `Finding`s. A detector that crashes becomes
a finding (code E900) and the run goes on.

Codes are never reused. Families: Q capture quality, M MSS/MTU, T TCP, S TLS, B black hole,
X cross-capture, L other causes. `pcapmtu rules` lists them, `pcapmtu explain CODE` explains one.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from ..context import Context
from ..results import Finding


@dataclass(frozen=True)
class Hit:
    values: dict  # fills the message template
    capture: str = ""
    conn: int = -1
    frames: tuple[int, ...] = ()
    wireshark_filter: str = ""
    evidence: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Rule:
    code: str
    name: str
    severity: str
    message: str
    hint: str
    why: str
    implies: str = ""  # per-connection verdict this finding implies ("" = none)
    reason: str = ""  # for implies == "not_mtu": what it is instead
    func: Callable[[Context], Iterable[Hit]] | None = None


RULES: dict[str, Rule] = {}


def rule(
    code: str,
    name: str,
    severity: str,
    message: str,
    hint: str,
    why: str,
    implies: str = "",
    reason: str = "",
):
    """Register a detector function under a stable code."""

    def wrap(func: Callable[[Context], Iterable[Hit]]):
        if code in RULES:
            raise ValueError(f"detector code {code} registered twice")
        RULES[code] = Rule(code, name, severity, message, hint, why, implies, reason, func)
        return func

    return wrap


CRASH = Rule(
    "E900",
    "detector-crashed",
    "warning",
    "detector {code} failed on this input: {error}",
    "Please report it with the capture if you can share it; the other detectors still ran.",
    "A bug in one detector must not hide what the others found.",
)


def run(ctx: Context) -> list[Finding]:
    findings: list[Finding] = []
    for code in sorted(RULES):
        r = RULES[code]
        try:
            hits = list(r.func(ctx)) if r.func else []
        except Exception as exc:  # noqa: BLE001 - a crashing detector becomes a finding
            tb = traceback.format_exception_only(type(exc), exc)[-1].strip()
            findings.append(_finding(CRASH, Hit({"code": code, "error": tb})))
            continue
        findings.extend(_finding(r, h) for h in hits)
    return findings


def _finding(r: Rule, h: Hit) -> Finding:
    return Finding(
        code=r.code,
        name=r.name,
        severity=r.severity,
        message=r.message.format(**h.values),
        hint=r.hint.format(**h.values) if "{" in r.hint else r.hint,
        capture=h.capture,
        conn=h.conn,
        frames=tuple(int(x) for x in h.frames),
        wireshark_filter=h.wireshark_filter,
        evidence=h.evidence,
    )


def load_all() -> None:
    """Import every detector module (explicit list: no plugin discovery)."""
    from . import blackhole, causes, cross, mss, pmtud, quality, tcp_rules, tls  # noqa: F401


load_all()


def markdown() -> str:
    """docs/detectors.md, generated from the registry (`python -m pcapmtu.detectors > docs/detectors.md`)."""
    lines = [
        "# Detector reference",
        "",
        "Generated from the registry in `analyzer/pcapmtu/detectors/` by `python -m pcapmtu.detectors`; do not",
        "edit by hand. `pcapmtu rules` lists the codes and `pcapmtu explain CODE` prints one entry.",
        "",
        "Families: **Q** capture quality, **M** MSS/MTU, **T** TCP, **S** TLS, **B** black hole,",
        "**X** cross-capture (host vs container), **L** look-alikes that are not MTU problems.",
        "A code whose *verdict* is set decides the verdict of the connection it is about",
        "(strongest first: mtu_blackhole, mtu_blackhole_recovered, not_mtu).",
        "",
        "| code | name | severity | verdict |",
        "|---|---|---|---|",
    ]
    for code in sorted(RULES):
        r = RULES[code]
        verdict = r.implies + (f" ({r.reason})" if r.reason else "")
        lines.append(f"| [{code}](#{code.lower()}) | {r.name} | {r.severity} | {verdict} |")
    lines.append("")
    for code in sorted(RULES):
        r = RULES[code]
        lines += [
            f"## {code}",
            "",
            f"**{r.name}** ({r.severity})",
            "",
            f"- Message: `{r.message}`",
            f"- Why it matters: {r.why}",
            f"- Fix: {r.hint or '-'}",
        ]
        if r.implies:
            lines.append(
                f"- Verdict for the connection: `{r.implies}`" + (f" ({r.reason})" if r.reason else "")
            )
        lines.append("")
    return "\n".join(lines)
