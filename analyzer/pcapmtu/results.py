"""Result records: findings, per-connection verdicts, the path-MTU estimate, the fix, the diagnosis.

Plain frozen dataclasses; JSON via `dataclasses.asdict`. Nothing untrusted is validated through them:
strings from captures are escaped by each renderer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Verdict(StrEnum):
    """What a connection or an incident is judged to be. Members are their report.json strings; `rank`
    orders them: when several findings imply verdicts for one connection, the highest rank wins."""

    MTU_BLACKHOLE = "mtu_blackhole"
    MTU_BLACKHOLE_RECOVERED = "mtu_blackhole_recovered"
    NOT_MTU = "not_mtu"
    INCONCLUSIVE = "inconclusive"
    HEALTHY = "healthy"

    @property
    def rank(self) -> int:
        return _VERDICT_RANK[self]

    @property
    def is_mtu(self) -> bool:
        """An MTU problem, found or recovered from: what the fix and the path-MTU numbers are about."""
        return self in (Verdict.MTU_BLACKHOLE, Verdict.MTU_BLACKHOLE_RECOVERED)

    @classmethod
    def ranks(cls) -> dict[str, int]:
        """verdict string -> rank, for pandas' `Series.map`."""
        return {str(v): v.rank for v in cls}


def _rank_by_declaration(members: type[StrEnum], first_highest: bool) -> dict:
    """Each member's rank from its place in the class: the order the class is written in is the order."""
    n = len(members)
    return {m: n - i if first_highest else i for i, m in enumerate(members)}


_VERDICT_RANK = _rank_by_declaration(Verdict, first_highest=True)  # mtu_blackhole 5 ... healthy 1


class Reason(StrEnum):
    """For `not_mtu`: what it is instead. When a connection's findings give several, the highest rank wins
    (a firewall that drops SYNs explains more than a reset does)."""

    FILTERED = "filtered"
    REFUSED = "refused"
    LOSSY_LINK = "lossy_link"
    SERVER_SLOW = "server_slow"
    RESET = "reset"
    NO_RESPONSE = "no_response"

    @property
    def rank(self) -> int:
        return _REASON_RANK[self]

    @property
    def words(self) -> str:
        """The reason as the explanation says it."""
        return _REASON_WORDS[self]


_REASON_RANK = _rank_by_declaration(Reason, first_highest=True)  # filtered 6 ... no_response 1
_REASON_WORDS = {
    Reason.FILTERED: "SYNs are never answered: a firewall or routing problem",
    Reason.REFUSED: "the server refuses the connection (RST): nothing listens there",
    Reason.LOSSY_LINK: "packets of every size are lost at random: a lossy link, full-size packets still get through",
    Reason.SERVER_SLOW: "the server is slow to answer; nothing is lost",
    Reason.RESET: "connections are reset",
    Reason.NO_RESPONSE: "the server never answers the request",
}


class Severity(StrEnum):
    """How loud a finding is, quietest first."""

    INFO = "info"
    WARNING = "warning"
    ERROR = "error"

    @property
    def rank(self) -> int:
        """Louder is higher: info 0, warning 1, error 2."""
        return _SEVERITY_RANK[self]


_SEVERITY_RANK = _rank_by_declaration(Severity, first_highest=False)  # info 0, warning 1, error 2


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
    platform: str = "docker"  # the language it speaks: docker, kubernetes, or "docker or kubernetes"
    network: dict | None = None  # {"platform", "decided_by", "overlay": {...} | None, "cni": str}
    settings: tuple[dict, ...] = ()  # per platform/CNI: the setting, its computed value and the arithmetic
    snippets: tuple[dict, ...] = ()  # file contents to merge or apply: {"what", "format": json, "text"}
    ALTERNATIVES = "alternatives (instead of the recommended fix, when it says so)"  # a heading, not a field

    @property
    def recommended(self) -> tuple[dict, ...]:
        return tuple(c for c in self.commands if c.get("choice") != "alternative")

    @property
    def alternatives(self) -> tuple[dict, ...]:
        return tuple(c for c in self.commands if c.get("choice") == "alternative")

    @property
    def settings_heading(self) -> str:
        """The heading above `settings`: for which platform, and why that one."""
        why = (self.network or {}).get("decided_by", "")
        return f"Settings for the network in use ({self.platform}{': ' + why if why else ''})"

    @staticmethod
    def comment(command: dict) -> str:
        """The line above a command: what it does, and when to choose it."""
        return command["what"] + (f", {command['when']}" if command.get("when") else "")


@dataclass(frozen=True)
class Diagnosis:
    verdict: Verdict
    confidence: float
    reason: Reason | str  # for not_mtu: what it is instead ("" otherwise)
    explanation: str
    path_mtu: int | None
    recommended_mss: int | None
    fix: Fix | None
    confidence_factors: tuple[dict, ...] = ()  # {"why": ..., "delta": ...}: what raised and lowered it
