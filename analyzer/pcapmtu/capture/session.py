"""One capture session: both tcpdumps started and listening, the interfaces and clamps recorded, the failure
reproduced (or the duration waited out), both stopped cleanly, the files rewritten as pcapng with their
metadata. Whatever ends it (the duration, the reproduction, the size cap, Ctrl-C, SIGTERM, an error), no
tcpdump it started is left running and what was captured is kept.
"""

from __future__ import annotations

import json
import platform
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from .._version import __version__
from ..errors import CaptureFailed
from . import clamps as clamps_mod
from . import interfaces, metadata, pcapng, reproduce
from .metadata import SCHEMA
from .namespaces import Namespace
from .tcpdump import READY_TIMEOUT_S, Tcpdump, default_filter

ROLES = ("container", "host")  # container first: it is the capture that matters most (docs/capturing.md)
SETTLE_S = 1.0  # after the reproduction, for the last ACKs and retransmissions to be captured
POLL_S = 0.1
WORKER_JOIN_S = 30.0  # its running child is ended at once; this bounds the cleanup after it
PRIVATE = 0o600  # captures hold addresses, names and any unencrypted payload (docs/capturing.md, Safety)


def planned_files() -> list[str]:
    """Every name a session writes in its directory (the report's are analyze's)."""
    names = [metadata.NAME]
    for role in ROLES:
        names += [f"{role}.pcapng", f"{role}.pcap", f"{role}.tcpdump.log"]
    return names


@dataclass(frozen=True)
class Plan:
    """What to capture, where, for how long (the options of `pcapmtu capture`)."""

    ns: Namespace
    out: Path
    iface: str
    host_iface: str | None
    target: str | None
    duration_s: float
    snaplen: int
    max_bytes: int
    bpf: str | None  # None: tcpdump.default_filter for each interface's link type
    reproduce_url: str | None = None
    reproduce_timeout_s: float = 20.0


@dataclass
class Outcome:
    """What the session produced: the files by role, the metadata document and where it was written."""

    files: dict[str, Path]
    document: dict
    metadata_path: Path
    warnings: list[str] = field(default_factory=list)


class _Stop(Exception):
    """SIGTERM or SIGHUP arrived: stopped like Ctrl-C."""


def run(plan: Plan, say: Callable[[str], None] = lambda _line: None) -> Outcome:
    """Take the captures. CaptureFailed (one line) when they cannot start or are interrupted; the files
    captured until then are kept and described either way."""
    uplink = plan.host_iface or interfaces.uplink_to(plan.target)
    created = not plan.out.exists()
    plan.out.mkdir(parents=True, exist_ok=True)
    dumps: dict[str, Tcpdump] = {}
    started = datetime.now(UTC)
    stopped_by = "duration"
    failure: CaptureFailed | None = None
    listening = False
    work: dict = {}
    probes = reproduce.Probes()
    worker: threading.Thread | None = None
    previous = _on_signals()
    try:
        try:
            for role, ns, iface in (("container", plan.ns, plan.iface), ("host", None, uplink)):
                raw = plan.out / f"{role}.pcap"
                log = plan.out / f"{role}.tcpdump.log"
                bpf = plan.bpf or default_filter(interfaces.link_type(ns, iface))
                dumps[role] = Tcpdump.start(role, ns, iface, raw, log, plan.snaplen, bpf)
            deadline = time.monotonic() + READY_TIMEOUT_S
            for dump in dumps.values():
                dump.wait_ready(deadline)
            listening = True
            say(f"capturing: container {plan.iface} and host {uplink} (tcpdump PIDs {_pids(dumps)})")
            work["interfaces"] = interfaces.survey(plan.ns, plan.iface, uplink)
            work["clamps"], work["clamps_unread"] = clamps_mod.find()
            if plan.reproduce_url:
                worker = threading.Thread(target=_reproduce, args=(plan, work, probes, say), daemon=True)
                worker.start()
            else:
                say(
                    f"reproduce the failure now; the captures stop in {plan.duration_s:g} s "
                    "(Ctrl-C stops them earlier)"
                )
            stopped_by = _wait(plan, dumps, worker)
            if stopped_by == "max-size":
                say(f"a capture reached --max-size ({plan.max_bytes} bytes): both stopped")
        except (KeyboardInterrupt, _Stop):
            stopped_by = "interrupt"
        except CaptureFailed as exc:
            stopped_by, failure = "error", exc
    finally:
        probes.stop()  # the reproduction's running child, by PID; no new one starts
        if worker is not None:
            worker.join(WORKER_JOIN_S)  # it undoes what its pings left cached (reproduce.bisect)
        for dump in dumps.values():
            dump.stop()
        _restore(previous)
    ended = datetime.now(UTC)
    if not listening:  # nothing worth keeping: a capture that never started is no evidence
        for dump in dumps.values():
            dump.out.unlink(missing_ok=True)
            dump.log.unlink(missing_ok=True)
        if created and not any(plan.out.iterdir()):
            plan.out.rmdir()
        raise failure or CaptureFailed("interrupted before the captures started; nothing was kept")
    outcome = _finish(plan, dumps, work, uplink, started, ended, stopped_by)
    if failure is not None:
        raise CaptureFailed(f"{failure}; what was captured is in {plan.out}")
    if stopped_by == "interrupt":
        raise CaptureFailed(
            f"interrupted: both captures stopped; what they took is in {plan.out} (not analysed)"
        )
    return outcome


def _pids(dumps: dict[str, Tcpdump]) -> str:
    return ", ".join(f"{role} {d.pid}" for role, d in dumps.items())


def _wait(plan: Plan, dumps: dict[str, Tcpdump], worker: threading.Thread | None) -> str:
    """Until the duration ends, the reproduction is done, a file reaches the size cap or a tcpdump dies."""
    end = time.monotonic() + plan.duration_s
    while True:
        for dump in dumps.values():
            if not dump.running():
                raise CaptureFailed(f"tcpdump on the {dump.role} ({dump.iface}) stopped: {dump.failure()}")
            if dump.size() >= plan.max_bytes:
                return "max-size"
        if worker is not None and not worker.is_alive():
            time.sleep(SETTLE_S)
            return "reproduce"
        if time.monotonic() >= end:
            return "duration"
        time.sleep(POLL_S)


def _reproduce(plan: Plan, work: dict, probes: reproduce.Probes, say) -> None:
    """In a thread: the request, then the DF ping bisection; both recorded in `work`."""
    try:
        say(f"reproducing: {plan.reproduce_url}")
        req = reproduce.request(plan.ns, str(plan.reproduce_url), plan.reproduce_timeout_s, probes)
        work["reproduce"] = req
        say(
            f"request ({req.runner}): exit {req.exit_code}, HTTP {req.http_code}, {req.size_download} bytes"
            + (f" - {req.error}" if req.error else "")
        )
        target = plan.target
        mtu = next((i.mtu for i in work.get("interfaces", ()) if i.role == "container"), None)
        if target and mtu:
            ping = reproduce.bisect(plan.ns, target, mtu, probes)
            work["ping"] = ping
            if ping.answered:
                say(
                    f"DF pings to {target}: {ping.largest_ok} passed, {ping.smallest_lost} did not (payload bytes)"
                )
            else:
                say(f"DF pings to {target}: no reply even at {reproduce.PING_SMALL} bytes (pings blocked?)")
    except reproduce.Stopped:
        work["reproduce_error"] = "the captures stopped before the reproduction was done"
    except Exception as exc:  # noqa: BLE001 - a failed probe is recorded, the captures go on
        work["reproduce_error"] = str(exc)


def _finish(plan, dumps, work, uplink, started, ended, stopped_by) -> Outcome:
    """The metadata document, the pcapng files with it in their comments, the document beside them."""
    found = work.get("interfaces", [])
    by_role = {i.role: i for i in found}
    doc: dict = {
        "schema": SCHEMA,
        "tool": f"pcapmtu {__version__}",
        "started": started.isoformat(timespec="milliseconds"),
        "ended": ended.isoformat(timespec="milliseconds"),
        "stopped_by": stopped_by,
        "namespace": plan.ns.describe(),
        "target": plan.target,
        "captures": {},
        "interfaces": [i.as_dict() for i in found],
        "mtus": {
            "container": by_role["container"].mtu if "container" in by_role else None,
            "host": by_role["uplink"].mtu if "uplink" in by_role else None,
        },
        "clamps": [c.as_dict() for c in work.get("clamps", [])],
        "clamps_unread": work.get("clamps_unread", []),
        "reproduce": _asdict(work.get("reproduce")),
        "ping": work["ping"].as_dict() if "ping" in work else None,
    }
    if "reproduce_error" in work:
        doc["reproduce_error"] = work["reproduce_error"]
    warnings = []
    for role, dump in dumps.items():
        doc["captures"][role] = {
            "file": f"{role}.pcapng",
            "iface": dump.iface,
            "namespace": "container" if role == "container" else "host",
            "snaplen": plan.snaplen,
            "filter": dump.bpf,
            "command": dump.argv,
            "packets": pcapng.count(dump.out) if dump.out.exists() else None,
            **{f"tcpdump_{k}": v for k, v in dump.stats.items()},
        }
        if dump.stats.get("dropped"):
            warnings.append(f"tcpdump on the {role} lost {dump.stats['dropped']} packets (dropped by kernel)")
    doc["warnings"] = warnings
    files = {}
    summary = _summary(doc)
    for role, dump in dumps.items():
        if not dump.out.exists():
            continue
        target = plan.out / f"{role}.pcapng"
        mtu = by_role.get("container" if role == "container" else "uplink")
        iface_note = f"{dump.iface} in the {doc['captures'][role]['namespace']} namespace" + (
            f", MTU {mtu.mtu}" if mtu else ""
        )
        count = pcapng.convert(
            dump.out,
            target,
            comments=[summary, json.dumps(doc, separators=(",", ":"))],
            iface=dump.iface,
            iface_comment=iface_note,
            bpf=dump.bpf,
            application=f"pcapmtu {__version__} capture (tcpdump)",
            system=f"{platform.system()} {platform.release()}",
        )
        target.chmod(PRIVATE)
        if count != doc["captures"][role]["packets"]:  # counted from the same file: never, unless it changed
            raise CaptureFailed(f"{dump.out} changed while it was rewritten ({count} packets)")
        dump.out.unlink()
        dump.log.unlink(missing_ok=True)
        files[role] = target
    path = metadata.write(plan.out, doc)
    path.chmod(PRIVATE)
    return Outcome(files, doc, path, warnings)


def _summary(doc: dict) -> str:
    """The first comment of each pcapng: the interfaces and clamps in one line a person reads in Wireshark."""
    ifaces = "; ".join(f"{i['role']} {i['name']} MTU {i['mtu']}" for i in doc["interfaces"]) or "not recorded"
    clamps = "; ".join(c["rule"] for c in doc["clamps"]) or "none"
    ns = doc["namespace"]
    return (
        f"pcapmtu capture of {ns['kind']} {ns['name']}, {doc['started']} to {doc['ended']} "
        f"(stopped by {doc['stopped_by']}). Interfaces: {ifaces}. MSS clamp rules on the host: {clamps}."
    )


def _asdict(value) -> dict | None:
    return asdict(value) if value is not None else None


def _on_signals():
    """SIGINT (even where a shell set it to be ignored, as for `cmd &` in a script), SIGTERM and SIGHUP stop
    the session like Ctrl-C (only the main thread may set handlers)."""
    if threading.current_thread() is not threading.main_thread():
        return {}

    def stop(_signum, _frame):
        raise _Stop

    return {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}


def _restore(previous: dict) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler)
