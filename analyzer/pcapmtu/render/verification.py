"""Did the fix take? Two reports - before and after the change - compared service by service.

Both sides become report.json documents first (a folder of captures is analysed, a report.json is read), so a
report written last week and captures taken now compare the same way. Per service that failed before: the
SYN MSS in effect (the smaller of the client's SYN and the server's SYN-ACK as the capture nearest the client
saw them: a clamp rewrites both), the largest server packet that reached that capture, whether full-size
segments (MSS + 40 bytes of headers, + 60 for IPv6) now arrive, and whether the request now completes (the
connection's verdict is healthy). docs/verification.md.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from ..errors import UsageError

TOOK, DID_NOT_TAKE, CANNOT_TELL = "took", "did_not_take", "cannot_tell"
MTU_VERDICTS = ("mtu_blackhole", "mtu_blackhole_recovered")
CAPTURE_SUFFIXES = (".pcap", ".pcapng", ".cap")
ROLE_STEMS = {
    "host": "host",
    "node": "host",
    "container": "container",
    "pod": "container",
    "server": "server",
}


@dataclass(frozen=True)
class Service:
    """One service that failed before, before and after."""

    service: str
    mss_before: int | None  # SYN MSS in effect (min of SYN and SYN-ACK at the capture nearest the client)
    mss_after: int | None
    largest_before: int | None  # largest server packet (IP length) that reached that capture
    largest_after: int | None
    full_size_after: bool | None  # a full-size segment (MSS + headers) reached it after; None: no connection
    completes_after: bool | None  # the after connections are healthy; None: the request was not repeated
    verdicts_after: tuple[str, ...]


@dataclass(frozen=True)
class Verification:
    outcome: str  # took, did_not_take, cannot_tell
    line: str  # the verdict line
    before: dict  # {"source", "verdict", "path_mtu"}
    after: dict
    services: tuple[Service, ...]

    def to_json(self) -> dict:
        from .._version import __version__

        return {
            "schema_version": 1,
            "tool": {"name": "pcapmtu", "version": __version__},
            "outcome": self.outcome,
            "line": self.line,
            "before": self.before,
            "after": self.after,
            "services": [asdict(s) | {"verdicts_after": list(s.verdicts_after)} for s in self.services],
        }


def load(path: Path, platform: str = "auto") -> tuple[dict, str]:
    """(report document, where it came from): a report.json file, a folder holding captures (analysed; the
    file names host/node, container/pod, server give the roles, other captures are placed by where they were
    taken), or a folder holding only a report.json."""
    path = Path(path)
    if path.is_file():
        if path.suffix == ".json":
            return _read_report(path), f"{path} (report)"
        return _analyse({"captures": [path]}, platform), f"{path} (analysed)"
    if not path.is_dir():
        raise UsageError(f"{path}: no such file or folder")
    files = sorted(f for f in path.iterdir() if f.is_file() and _is_capture(f))
    if files:
        roles: dict = {}
        for f in files:
            role = ROLE_STEMS.get(f.name.split(".")[0])
            if role and role not in roles:
                roles[role] = f
        named = list(roles.values())
        given = roles if roles else {"captures": files}
        what = ", ".join(f.name for f in (named or files))
        return _analyse(given, platform), f"{path}: {what} (analysed)"
    report = path / "report.json"
    if report.is_file():
        return _read_report(report), f"{report} (report)"
    raise UsageError(f"{path}: holds neither captures (.pcap, .pcapng, .cap) nor a report.json")


def _is_capture(f: Path) -> bool:
    return any(s in CAPTURE_SUFFIXES for s in f.suffixes)


def _read_report(path: Path) -> dict:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise UsageError(f"{path}: not a readable report.json ({exc})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("flows"), list) or "verdict" not in doc:
        raise UsageError(f"{path}: not a pcapmtu report.json (no verdict and flows)")
    return doc


def _analyse(roles: dict, platform: str) -> dict:
    from ..diagnose.analysis import analyze
    from .jsondoc import analyze_document

    return analyze_document(analyze(**roles, platform=platform))


def _client_flows(doc: dict) -> list[dict]:
    """Connections as the capture nearest the client saw them (every capture's when none is near it)."""
    near = {
        c.get("role") for c in doc.get("captures", []) if (c.get("vantage") or {}).get("position") == "client"
    }
    flows = [f for f in doc["flows"] if isinstance(f, dict)]
    chosen = [f for f in flows if f.get("capture") in near]
    return chosen or flows


def _key(flow: dict) -> tuple[str, int]:
    """The same request before and after: the service's name (DNS or SNI) and port, else its address and port
    (a name survives a change of address or IP version)."""
    return (str(flow.get("name") or flow.get("server_ip")), int(flow.get("server_port") or 0))


def _int(value) -> int | None:
    return int(value) if isinstance(value, int | float) and value > 0 else None


def _mss(flow: dict) -> int | None:
    seen = [m for m in (_int(flow.get("mss_client")), _int(flow.get("mss_server"))) if m]
    return min(seen) if seen else None


def _summary(flows: list[dict]) -> tuple[int | None, int | None]:
    mss = [m for m in map(_mss, flows) if m]
    largest = [v for v in (_int(f.get("max_ip_len_s2c")) for f in flows) if v]
    return (min(mss) if mss else None), (max(largest) if largest else None)


def compare(before: dict, after: dict, before_source: str = "", after_source: str = "") -> Verification:
    """The outcome and its evidence, per service that failed before."""
    side = {
        "before": {
            "source": before_source,
            "verdict": before.get("verdict"),
            "path_mtu": before.get("path_mtu"),
        },
        "after": {"source": after_source, "verdict": after.get("verdict"), "path_mtu": after.get("path_mtu")},
    }
    was, now = _client_flows(before), _client_flows(after)
    failing = sorted({_key(f) for f in was if f.get("verdict") in MTU_VERDICTS})
    if not failing:
        line = f"cannot tell: the before captures show no MTU problem (verdict {before.get('verdict')})"
        return Verification(CANNOT_TELL, line, side["before"], side["after"], ())
    services = []
    for key in failing:
        old = [f for f in was if _key(f) == key]
        new = [f for f in now if _key(f) == key]
        name = str(old[0].get("service"))
        mss_b, large_b = _summary(old)
        mss_a, large_a = _summary(new)
        verdicts = tuple(sorted({str(f.get("verdict")) for f in new}))
        full = None
        if new:
            header = 60 if any(f.get("ipv") == 6 for f in new) else 40
            full = bool(mss_a and large_a and large_a >= mss_a + header)
        completes = None if not new else all(v == "healthy" for v in verdicts)
        services.append(Service(name, mss_b, mss_a, large_b, large_a, full, completes, verdicts))
    broken = [s for s in services if s.completes_after is False]
    missing = [s for s in services if s.completes_after is None]
    if broken:
        s = broken[0]
        outcome = DID_NOT_TAKE
        line = (
            f"the fix did not take: {s.service} still fails after the change ({', '.join(s.verdicts_after)})"
        )
    elif missing:
        outcome = CANNOT_TELL
        line = (
            f"cannot tell: the failing request ({missing[0].service}) was not repeated in the after captures; "
            "reproduce it while capturing"
        )
    else:
        outcome = TOOK
        s = services[0]
        line = (
            f"the fix took: {s.service} now completes (SYN MSS in effect {s.mss_before} -> {s.mss_after}, "
            f"largest delivered {s.largest_before} -> {s.largest_after} bytes)"
        )
    return Verification(outcome, line, side["before"], side["after"], tuple(services))


def lines(v: Verification) -> list[str]:
    """The comparison as the terminal prints it (capture text is escaped by the caller)."""
    out = [
        f"before: {v.before['source']}: verdict {v.before['verdict']}",
        f"after:  {v.after['source']}: verdict {v.after['verdict']}",
    ]
    for s in v.services:
        full = {True: "yes", False: "no", None: "no connection"}[s.full_size_after]
        done = {True: "yes", False: "no", None: "not repeated"}[s.completes_after]
        out += [
            f"{s.service}:",
            f"  SYN MSS in effect:       {_num(s.mss_before)} -> {_num(s.mss_after)}",
            f"  largest delivered:       {_num(s.largest_before)} -> {_num(s.largest_after)} bytes",
            f"  full-size segments now:  {full}",
            f"  request completes now:   {done}",
        ]
    return [*out, v.line]


def _num(value) -> str:
    return "-" if value is None else str(value)
