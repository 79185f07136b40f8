"""Detectors: small pure functions with stable codes, declared like linter rules.

Each detector is registered with `@rule(...)` (keyword arguments only): its code, name, default severity, a
one-line message template, the fix, the why, an example of the values that fill the templates, the references
(RFCs, manuals) and, for per-connection conclusions, the verdict it implies. The function is named after the
rule (`pmtud-blackhole` -> `pmtud_blackhole`), and registration checks the templates against the example, so
a misspelled placeholder fails at import, not in front of a user. A detector yields `Hit`s; `run()` turns
them into `Finding`s. A detector that crashes becomes a finding (code E900) and the run goes on.

Codes are never reused. Families: Q capture quality, M MSS/MTU, T TCP, S TLS, H HTTP,
B black hole, X cross-capture, L other causes. `pcapmtu rules` lists them, `pcapmtu explain CODE` explains one.
"""

from __future__ import annotations

import re
import string
import traceback
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from ...results import Finding, Reason, Severity, Verdict
from ..context import Context


@dataclass(frozen=True)
class Hit:
    values: dict  # fills the message and fix templates
    capture: str = ""
    conn: int = -1
    frames: tuple[int, ...] = ()
    wireshark_filter: str = ""
    evidence: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Rule:
    code: str
    name: str
    severity: Severity
    message: str  # template, filled with a Hit's values
    fix: str  # template: what to do (a finding's `hint`)
    why: str
    example: Mapping = field(default_factory=dict)  # values that fill message and fix, as a real capture did
    references: tuple[str, ...] = ()  # "RFC 2923", or a https:// manual page
    implies: Verdict | None = None  # the verdict of the connection this finding is about (None: none)
    reason: Reason | None = None  # for implies == NOT_MTU: what it is instead
    func: Callable[[Context], Iterable[Hit]] | None = None

    @property
    def verdict_text(self) -> str:
        """`not_mtu (lossy_link)`, `mtu_blackhole`, or "" for a rule that decides nothing."""
        if self.implies is None:
            return ""
        return str(self.implies) + (f" ({self.reason})" if self.reason else "")


RULES: dict[str, Rule] = {}
CODE = re.compile(r"[A-Z][0-9]{3}")
NAME = re.compile(r"[a-z][a-z0-9]*(-[a-z0-9]+)*")
REFERENCE = re.compile(r"RFC [1-9][0-9]*|https://\S+")


def placeholders(template: str) -> set[str]:
    return {name for _text, name, _spec, _conv in string.Formatter().parse(template) if name}


def rule(
    *,
    code: str,
    name: str,
    severity: Severity,
    message: str,
    fix: str,
    why: str,
    example: Mapping,
    references: tuple[str, ...] = (),
    implies: Verdict | None = None,
    reason: Reason | None = None,
):
    """Register a detector function under a stable code, after checking the declaration."""

    def wrap(func: Callable[[Context], Iterable[Hit]]):
        declared = Rule(
            code,
            name,
            Severity(severity),
            message,
            fix,
            why,
            dict(example),
            tuple(references),
            implies,
            reason,
            func,
        )
        problems = check(declared)
        if problems:
            raise ValueError(f"rule {code}: " + "; ".join(problems))
        RULES[code] = declared
        return func

    return wrap


def check(r: Rule) -> list[str]:
    """What is wrong with a rule's declaration (empty when nothing)."""
    problems = []
    if not CODE.fullmatch(r.code):
        problems.append("a code is a capital letter and three digits")
    if r.code in RULES or any(other.name == r.name for other in RULES.values()):
        problems.append("registered twice (code or name)")
    if not NAME.fullmatch(r.name):
        problems.append("a name is lowercase words joined by '-'")
    if r.func is not None and r.func.__name__ != r.name.replace("-", "_"):
        problems.append(f"the function is named after the rule: def {r.name.replace('-', '_')}(ctx)")
    used = placeholders(r.message) | placeholders(r.fix)
    if unknown := sorted(used - set(PLACEHOLDERS)):
        problems.append(f"placeholders without a description in PLACEHOLDERS: {unknown}")
    if used != set(r.example):
        problems.append(
            f"the example must give exactly the placeholders {sorted(used)}, not {sorted(r.example)}"
        )
    else:
        try:
            r.message.format(**r.example), r.fix.format(**r.example)
        except (KeyError, IndexError, ValueError, TypeError) as exc:
            problems.append(f"the example does not fill the templates: {type(exc).__name__}: {exc}")
    if bad := [ref for ref in r.references if not REFERENCE.fullmatch(ref)]:
        problems.append(f"references are 'RFC N' or a https:// address: {bad}")
    if r.implies is not None and not isinstance(r.implies, Verdict):
        problems.append("implies is a Verdict")
    if r.implies == Verdict.HEALTHY:
        problems.append("a finding never implies healthy")
    if (r.implies == Verdict.NOT_MTU) != (r.reason is not None) or not isinstance(r.reason, Reason | None):
        problems.append("a reason (a Reason) is given exactly when the rule implies not_mtu")
    return problems


CRASH = Rule(
    "E900",
    "detector-crashed",
    Severity.WARNING,
    "detector {code} failed on this input: {error}",
    "Please report it with the capture if you can share it; the other detectors still ran.",
    "A bug in one detector must not hide what the others found.",
    example={"code": "B001", "error": "KeyError: 'mss_client'"},
)


# What each placeholder of a message or fix stands for, so `pcapmtu explain` and docs/detectors.md read as
# sentences: "{full}-byte packets" is shown as "<full size>-byte packets". Every placeholder a rule uses must be
# here (checked when the rule registers).
PLACEHOLDERS = {
    "about": "the connection the ICMP quotes",
    "after": "size after",
    "before": "size before",
    "between": "where, between the two capture points",
    "big": "full size",
    "caplen": "bytes",
    "code": "code",
    "cost_ms": "milliseconds",
    "count": "N",
    "detail": "problems",
    "ending": "the capture ended, or the client closed the connection",
    "duration": "seconds",
    "error": "error",
    "examples": "services",
    "far": "far capture",
    "far_mss": "MSS",
    "fix_mss": "to the path MTU minus headers",
    "full": "full size",
    "gaps": "gaps",
    "how": "key",
    "icmp_name": "ICMP type",
    "kind": "ICMP kind",
    "largest": "largest size",
    "late": "N",
    "matched": "N",
    "mss": "MSS",
    "mtu": "MTU",
    "missing": "what the capture lacks",
    "near_mss": "MSS",
    "own": "N",
    "owed": "N",
    "path": "to the path MTU",
    "port": "port",
    "reached": "(whether it reached the container)",
    "result": "reply or not",
    "retrans": "N",
    "role": "capture",
    "router": "router",
    "seen": "side",
    "sender": "client or server",
    "server": "server",
    "service": "service (name and address)",
    "size": "size",
    "stall": "seconds",
    "status": "HTTP status",
    "syns": "N",
    "target": "address",
    "times": "N",
    "total": "N",
    "wait": "seconds",
    "warning": "warning",
    "what": "what",
    "where": "where",
    "who": "who",
}


def readable(template: str) -> str:
    """A message template with each placeholder shown as what it stands for: "<full size>-byte"."""
    parts = []
    for text, name, _spec, _conv in string.Formatter().parse(template):
        parts.append(text)
        if name:
            parts.append(f"<{PLACEHOLDERS.get(name, name.replace('_', ' '))}>")
    return "".join(parts)


def run(ctx: Context) -> list[Finding]:
    findings: list[Finding] = []
    streams = {role: cap.flows["tcp_stream"].to_numpy() for role, cap in ctx.captures.items()}
    for code in sorted(RULES):
        r = RULES[code]
        try:
            hits = list(r.func(ctx)) if r.func else []
        except Exception as exc:  # noqa: BLE001 - a crashing detector becomes a finding
            tb = traceback.format_exception_only(type(exc), exc)[-1].strip()
            findings.append(_finding(CRASH, Hit({"code": code, "error": tb})))
            continue
        for h in hits:
            try:
                stream = streams[h.capture][h.conn] if h.conn >= 0 and h.capture in streams else -1
                findings.append(_finding(r, h, int(stream)))
            except (KeyError, IndexError, ValueError) as exc:  # a message its values cannot fill: a bug
                error = f"{r.code}'s message cannot be filled: {type(exc).__name__}: {exc}"
                findings.append(_finding(CRASH, Hit({"code": code, "error": error})))
    return findings


def _finding(r: Rule, h: Hit, tcp_stream: int = -1) -> Finding:
    return Finding(
        code=r.code,
        name=r.name,
        severity=r.severity,
        message=r.message.format(**h.values),
        hint=r.fix.format(**h.values) if "{" in r.fix else r.fix,
        capture=h.capture,
        conn=h.conn,
        frames=tuple(int(x) for x in h.frames),
        wireshark_filter=h.wireshark_filter,
        evidence=h.evidence,
        tcp_stream=tcp_stream,
    )


def load_all() -> None:
    """Import every detector module (explicit list: no plugin discovery)."""
    from . import blackhole, causes, cross, http, mss, pmtud, quality, tcp_rules, tls  # noqa: F401


load_all()


def reference_link(ref: str) -> str:
    """A reference as a Markdown link: RFCs at the RFC Editor, manuals at their address."""
    if ref.startswith("RFC "):
        return f"[{ref}](https://www.rfc-editor.org/rfc/rfc{ref[4:]})"
    return f"<{ref}>"


def markdown() -> str:
    """docs/detectors.md, generated from the registry (`python -m pcapmtu.diagnose.detectors > docs/detectors.md`)."""
    lines = [
        "# Detector reference",
        "",
        "Generated from the registry in `analyzer/pcapmtu/diagnose/detectors/` by `python -m pcapmtu.diagnose.detectors`; do not",
        "edit by hand. `pcapmtu rules` lists the codes and `pcapmtu explain CODE` prints one entry.",
        "",
        "Families: **Q** capture quality, **M** MSS/MTU, **T** TCP, **S** TLS, **H** HTTP, **B** black hole,",
        "**X** cross-capture (two capture points of one connection), **L** look-alikes that are not MTU problems.",
        "A code whose *verdict* is set decides the verdict of the connection it is about (strongest first:",
        "mtu_blackhole, mtu_blackhole_recovered, not_mtu, inconclusive). The sections below say how the",
        "findings read a capture; the codes follow.",
        "",
        "## Delivery",
        "",
        "A capture shows what passed its capture point: at the sender that is what was *sent*, not what arrived. An ACK",
        "is made by the receiver, so it proves delivery wherever the capture was taken. A data segment is",
        "",
        "- **delivered** when the receiver's cumulative ACK or one of its SACK blocks (RFC 2018) covers it, counted by",
        "  the copy that got through: a 1500-byte segment re-sent as 1024-byte pieces counts as 1024 bytes delivered",
        "  and the 1500-byte original as lost;",
        "- **lost** when its bytes were re-sent before any ACK covered them;",
        "- **unresolved** otherwise: in flight when the capture ended, or the receiver's ACKs are not in this capture.",
        "",
        '"Largest delivered", "full size delivered", "smallest lost" (the path-MTU bracket, B001-B005, L001) all read',
        "these. Only for a direction whose receiver ACKs the capture does not hold does presence stand in for",
        "delivery; otherwise presence in a capture is only what that point saw. Two kinds of loss are told apart:",
        "**loss that spares no size** (some lost packets were no larger than one that was delivered) is the link (L001,",
        "`not_mtu`); **loss by size** (full-size segments re-sent and never acknowledged, smaller ones acknowledged,",
        "nothing lost at or below the largest delivered size) is the MTU pattern.",
        "",
        "## Vantage points",
        "",
        "Each capture is placed on the path (`captures[].vantage` in report.json, a `capture ...: taken ...` line in",
        "the terminal), with its reasons:",
        "",
        "- TTL / hop limit: a packet leaves its sender at 64, 128 or 255 (32 on a few old stacks) and loses one per",
        "  router. Client packets at their initial value and server packets below it: the connection leaves from this",
        "  machine (**client**); the other way round: it ends here (**server**); both below: it is forwarded through",
        "  this point (**middle**: a docker host's uplink, a node, a router). Forwarded traffic wins, so a docker host's",
        "  capture that also holds its own connections is in the middle (unless more connections end there).",
        "- the handshake timing split, when the TTLs leave it open: at the client SYN to SYN-ACK takes 80 % or more of",
        "  the handshake's round trip, at the server 20 % or less. Round trips under 2 ms are too short to tell.",
        "- neither: **unknown** (the confidence loses 0.05).",
        "",
        "Roles given on the command line are checked two by two (container / host / server): when the one given as",
        "nearer the client was taken farther from it, the two are swapped, analysed in their right roles, and a",
        "`roles:` line (`role_changes` in report.json) says so. A capture given without a role (`--capture`, or a",
        "lone positional file) takes the role of its vantage: client -> a container's capture, middle -> the host's,",
        "server -> the server's (unknown, or a role already taken -> another container capture). A single capture",
        "given with a role keeps it. The client-side captures are paired with the far one: the docker host's capture,",
        "else the server's.",
        "",
        "| vantage | shows | cannot show |",
        "|---|---|---|",
        "| client (container `eth0`, the client machine) | what reached the client: a download black hole as full-size packets that never arrive and SACK holes; its own upload segments re-sent and never acknowledged (B002) | where on the path the packets died |",
        "| middle (the docker host's uplink) | both directions after NAT; the host's own connections (their SYN MSS gives the uplink MTU); beside a container capture, whether packets died before the uplink or inside the host (X002, B001's \"die ...\") | alone, whether packets it saw pass died later inside the host (bridge, veth): that takes the container's capture |",
        "| server (the server's own tcpdump) | what the server sent: full-size segments re-sent and never acknowledged while the client's ACKs show holes (B001: \"after they left the server\"); ICMP size reports that reached the server (B004, B005) | an upload black hole: the client's full-size segments never arrive, so the connection is a handshake and then nothing (`healthy`, lowered to 50 % by \"completed the handshake and carried no data\"); behind NAT, a container's connections and the host's own look alike |",
        "",
        "## Whose turn",
        "",
        "A silence is only a symptom. When a connection's longest silence began, who owed the next packet?",
        "",
        "- **network**: data was outstanding, sent and not yet acknowledged, either way (as far as this capture saw;",
        "  at the receiver, the client's SACK holes show what never arrived);",
        "- **server**: the client's request had been acknowledged and the server owed the answer (it was the first to",
        "  send after the silence, with more than a TLS alert; or the client's data was the last before it);",
        "- **client**: the server's data had been acknowledged, or nobody had sent data yet: an idle keep-alive",
        "  connection, or a client with nothing to ask.",
        "",
        "A silence of 1 s or more on the network's or the server's turn is a stall; on the client's turn it is not,",
        "so a busy capture full of idle keep-alive connections stays `healthy`. The server's think time is a silence",
        "on the server's turn that the server then ends with its answer: with no loss and a wait of 2 s or more it is",
        "L002 (`not_mtu (server_slow)`), also behind a quick TLS handshake. A request still unanswered when the capture",
        "ends (the connection open, the network or the server owing the next packet for 1 s or more) is",
        "`inconclusive`, never `healthy`. A plain-HTTP/1.x download that hangs after its headers is on the",
        "client's turn at the transport level; its own framing (Content-Length, chunk sizes) says what the server",
        "still owes (`http_response_end` in the flows table), so the turn is the server's through a silence after",
        "which no server data came, and at the end; when what it owes needs full-size packets and none was",
        "delivered it is H001, `inconclusive`, never `healthy`.",
        "",
        "## PMTUD outcomes",
        "",
        "An ICMP fragmentation-needed (RFC 1191) or packet-too-big (RFC 4443) quotes the packet it is about, so it names",
        "one connection and one direction (M003 lists them). What that sender did next is the outcome; each is read from",
        "a client-side, a middle or a server-side capture:",
        "",
        "| outcome | code | verdict |",
        "|---|---|---|",
        "| PMTUD works: after the report, segments no larger than the reported MTU are acknowledged (and fewer than two larger ones sent more than 0.2 s after it go unacknowledged); the path MTU is the ICMP's, and the time it cost is measured | B004 | none: the connection stays `healthy`, the stall it cost does not count |",
        "| report ignored: it passed this capture point, yet two or more segments larger than the reported MTU followed more than 0.2 s later, none acknowledged: the report died between this point and the sender's TCP | B005 | `mtu_blackhole` |",
        "| black hole with no ICMP: full-size segments never delivered, the sender never goes smaller, with size evidence (where the ignored report is in the capture, B005 stands beside it) | B001 (download), B002 (upload) | `mtu_blackhole` |",
        "| black hole recovered: a stall, then the server goes on with clearly smaller segments (RFC 4821 / Linux `tcp_mtu_probing`: 1024-byte segments after the backoff) | B003 | `mtu_blackhole_recovered` |",
        "",
        "## Captures without the handshake",
        "",
        "A connection already open when the capture began has no SYN, so no MSS. Its full size is then estimated as the",
        "largest packet seen either way (when over header + 536 bytes), which a sender-side capture shows and a",
        'receiver-side one may not; a verdict resting on it loses 0.15 ("judged without the handshake: MSS and full',
        "size are estimates\"); and since a receiver's capture shows its largest packet delivered by definition, no",
        "such estimate makes L001 (`lossy link`: full-size packets got through). A connection without its SYN or its",
        "SYN-ACK, or whose SYNs carry no MSS option (a snap length shorter than the TCP header cuts it off; `healthy`",
        "then holds at 50 % while such a connection carried data), that stalled 1 s or more with holes in its data",
        "(SACK holes, gaps, segments re-sent and never",
        "acknowledged, or the server's sequence numbers, even in a bare ACK or FIN, ahead of everything the client",
        "acknowledged) and never completed is T005, `inconclusive`, never `healthy`; the explanation names the next",
        "capture to take. One of which the capture holds neither the handshake nor any data lowers `healthy` by 0.2",
        '("the capture holds too little of them to judge"). Without handshakes, connections of two captures pair by their',
        "first sequence numbers, which must start within 5 s of each other once the clock offset (measured on the",
        "connections whose handshake both captures hold) is taken out.",
        "",
        "## Confidence",
        "",
        "The confidence is a sum of factors (`confidence_factors` in report.json; the negative ones on the terminal's",
        "`confidence lowered by:` line):",
        "",
        "| verdict | base | raised by | at most |",
        "|---|---|---|---|",
        "| `mtu_blackhole`, `mtu_blackhole_recovered` | 0.6 | 0.1 for each of S001, H001, T001, M001, M004, X002, B005 that agrees; 0.1 for two capture points | 0.97 with two capture points, 0.8 with one |",
        "| `not_mtu` | 0.75 | 0.1 for two capture points | 0.85 |",
        "| `healthy` | 0.7 | 0.2 for two capture points | 0.9 |",
        "| `inconclusive` | 0.3 | - | 0.3 |",
        "",
        "Lowered by: a damaged capture (-0.1); unless `inconclusive`, MSS and full size estimated without the",
        "handshake (-0.15) and a capture whose vantage is unknown (-0.05); for `healthy`, connections that completed",
        "the handshake and carried no data (-0.2), and a connection that stalled after its request and never finished,",
        "or that still waited for an answer when the capture ended without having carried a full-size packet (a SYN",
        "younger than its first 1 s timeout, a request or an HTTP response in progress): either holds `healthy` at",
        '50 % at most. The last factor may be the cap ("the most this kind of evidence supports"); no verdict is',
        "given below 0.05.",
        "",
        "## Codes",
        "",
        "| code | name | severity | verdict |",
        "|---|---|---|---|",
    ]
    for code in sorted(RULES):
        r = RULES[code]
        lines.append(f"| [{code}](#{code.lower()}) | {r.name} | {r.severity} | {r.verdict_text} |")
    lines.append("")
    for code in sorted(RULES):
        r = RULES[code]
        lines += [
            f"## {code}",
            "",
            f"**{r.name}** ({r.severity})",
            "",
            f"- Message: {readable(r.message)}",
            f"- Example: {r.message.format(**r.example)}",
            f"- Why it matters: {r.why}",
            f"- Fix: {readable(r.fix) or '-'}",
        ]
        if placeholders(r.fix):
            lines.append(f"- Fix, in the example: {r.fix.format(**r.example)}")
        if r.implies is not None:
            lines.append(
                f"- Verdict for the connection: `{r.implies}`" + (f" ({r.reason})" if r.reason else "")
            )
        if r.references:
            lines.append(f"- References: {', '.join(map(reference_link, r.references))}")
        lines.append("")
    return "\n".join(lines)
