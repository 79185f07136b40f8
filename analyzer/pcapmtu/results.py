"""Result records: findings, per-connection verdicts, the path-MTU estimate, the fix, the diagnosis.

Plain frozen dataclasses; JSON via `dataclasses.asdict`. Nothing untrusted is validated through them:
strings from captures are escaped by each renderer.
"""

from __future__ import annotations

from dataclasses import dataclass, field

VERDICTS = ("mtu_blackhole", "mtu_blackhole_recovered", "healthy", "not_mtu", "inconclusive")
NOT_MTU_REASONS = ("filtered", "refused", "reset", "lossy_link", "server_slow", "no_response")
SEVERITIES = ("info", "warning", "error")


@dataclass(frozen=True)
class Finding:
    """One detector hit: a stable code, a sentence, and the evidence an engineer can check."""

    code: str
    name: str
    severity: str
    message: str
    hint: str
    capture: str = ""  # role of the capture it is about: host, container, container2, ... ("" = all)
    conn: int = -1  # connection id in that capture, -1 when not about one connection
    frames: tuple[int, ...] = ()
    wireshark_filter: str = ""
    evidence: dict = field(default_factory=dict)
    tcp_stream: int = -1  # Wireshark's tcp.stream of that connection, -1 when none or unknown


@dataclass(frozen=True)
class PathMTU:
    """What the captures say about the largest packet the path carries, per IP version."""

    ipv: int
    value: int | None  # pinned when the evidence agrees on one number
    low: int | None  # the path carried packets this large
    high: int | None  # ... and did not carry packets this large (exclusive upper bound - 1)
    decided_by: str
    signals: tuple[dict, ...] = ()
    independent: bool = (
        True  # pinned by a signal of its own (ICMP, a SYN MSS, pings, stated), not by the bracket
    )


@dataclass(frozen=True)
class Fix:
    """The remediation, with numbers derived from the captures."""

    summary: str
    mss: int | None
    mtu: int | None
    commands: tuple[dict, ...] = ()  # {"what", "command", "choice": recommended|alternative, "when"}
    notes: tuple[str, ...] = ()
    ALTERNATIVES = "alternatives (instead of the recommended fix, when it says so)"  # a heading, not a field

    @property
    def recommended(self) -> tuple[dict, ...]:
        return tuple(c for c in self.commands if c.get("choice") != "alternative")

    @property
    def alternatives(self) -> tuple[dict, ...]:
        return tuple(c for c in self.commands if c.get("choice") == "alternative")

    @staticmethod
    def comment(command: dict) -> str:
        """The line above a command: what it does, and when to choose it."""
        return command["what"] + (f", {command['when']}" if command.get("when") else "")


@dataclass(frozen=True)
class Diagnosis:
    verdict: str
    confidence: float
    reason: str  # for not_mtu: what it is instead
    explanation: str
    path_mtu: int | None
    recommended_mss: int | None
    fix: Fix | None
    confidence_factors: tuple[dict, ...] = ()  # {"why": ..., "delta": ...}: what raised and lowered it
