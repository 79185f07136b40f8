"""tshark is the reference for delivery: which TCP data segments the receiver acknowledged, and which were lost.

Every path-MTU verdict rests on pcapmtu.diagnose.delivery (the largest IP packet the receiver acknowledged, the smallest
and largest one re-sent before any ACK covered it). A slip there turns a healthy capture into a black hole or
hides one, so the facts are recomputed here from tshark's own dissection, in plain Python and without
pcapmtu's sequence, ACK or SACK decoding, and compared frame by frame (`segment_fate`) and per connection
and direction (`delivery`); a last test follows one black hole's lost 1500-byte packets into the diagnosis.

The definition (delivery.py), per data segment [start, end) of one direction, in capture time order (ts_ns):

- delivered: a receiver ACK (ACK flag) acknowledges `end` and no later copy of any of its bytes was sent
  before the first such ACK; or one SACK block of the receiver spans [start, end) and no later copy was
  ever sent;
- lost: not delivered, and a later segment of the same connection and direction re-sending any of its
  bytes (a partial overlap counts) was sent before any cumulative ACK covered it;
- unresolved otherwise. "Later" is strictly later in capture time; segments without payload are not judged.

Taken from pcapmtu: only which frames are `dup_copy` (one packet seen again on a second interface by
`tcpdump -i any`; left out on both sides, that marking is tested in test_oracle.py) and, for the per
connection columns, which connection and direction each frame is. Sequence numbers are tshark's raw ones,
made relative per direction here (offset from the direction's SYN, else its first segment, signed 32 bits).
The client is who sent the first SYN (else the SYN-ACK's receiver, else the first sender); a stream with
no handshake has no real client, pcapmtu then names the higher port one, and the oracle's directions are
matched to pcapmtu's by who sent the frames.

Runs on the lab captures (sample_pcaps/*/container|host|server.pcap) and the public corpus (semantic/ and
format/), one test per capture and check; tshark runs once per file, started ahead in a thread pool.
Disagreements that are pcapmtu's fault go in PCAPMTU_WRONG (xfail, strict) with the frames and why.
"""

from __future__ import annotations

import bisect
import math
import os
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pytest

import pcapmtu
from pcapmtu.diagnose.delivery import delivery, segment_fate
from support import tshark
from support.environment import CORPUS, SAMPLES, corpus_files, require_tool

if TYPE_CHECKING:
    from _pytest.mark import ParameterSet

FIELDS = [
    "frame.number",
    "frame.time_epoch",
    "tcp.stream",
    "frame.protocols",
    "ip.src",
    "ipv6.src",
    "tcp.srcport",
    "tcp.seq",
    "tcp.len",
    "tcp.ack",
    "tcp.flags.ack",
    "tcp.flags.syn",
    "tcp.options.sack_le",
    "tcp.options.sack_re",
    "ip.len",
    "ipv6.plen",
]
NONE = math.inf  # "never" (tshark may print times beyond int64 nanoseconds)
AGGREGATES = [
    "delivered_segments",
    "delivered_max_ip",
    "lost_segments",
    "lost_min_ip",
    "lost_max_ip",
    "lost_not_larger",
    "acks_seen",
]

# test id ("scenario/host.pcap", "semantic/x.pcap") -> frames and why pcapmtu is wrong there: that
# parametrization is xfail(strict=True), so it fails again once pcapmtu is fixed and the entry must go
PCAPMTU_WRONG: dict[str, str] = {}


def _captures() -> list[Path]:
    files = [p for p in corpus_files("semantic", "format") if not p.name.endswith(".md")]
    labs = [SAMPLES, *([Path(os.environ["PCAPMTU_LAB_DIR"])] if os.environ.get("PCAPMTU_LAB_DIR") else [])]
    for lab in labs:  # PCAPMTU_LAB_DIR: freshly regenerated lab captures (CI), as in test_oracle.py
        for name in ("container.pcap", "host.pcap", "server.pcap"):
            files += lab.glob(f"*/{name}")
    return sorted(files, key=lambda p: (p.parent.parent == CORPUS, str(p)))


def _params() -> list[ParameterSet]:
    out = []
    for path in _captures():
        name = f"{path.parent.name}/{path.name}"
        why = PCAPMTU_WRONG.get(name)
        marks = [pytest.mark.xfail(strict=True, reason=why)] if why else []
        out.append(pytest.param(path, id=name, marks=marks))
    return out


# ------------------------------------------------------------------------------------------ tshark side
@dataclass
class Pkt:
    """One TCP frame as tshark dissects it (innermost IP header)."""

    frame: int
    ts_ns: int
    stream: int
    sender: tuple[str, int]
    seq: int
    tcp_len: int
    ack: int | None  # None without the ACK flag
    syn: bool
    sack: list[tuple[int, int]]
    ip_len: int


@dataclass
class Segment:
    frame: int
    ts_ns: int
    start: int
    end: int
    ip_len: int


@dataclass
class Oracle:
    fate: dict[int, int]  # frame -> 1 delivered, -1 lost, 0 unresolved (data segments only)
    dirn: dict[int, int]  # frame -> 0 client to server, 1 server to client
    stream_of: dict[int, int]  # frame -> tcp.stream
    handshake: set[int] = field(default_factory=set)  # streams with a SYN or SYN-ACK in the capture
    per_stream: dict[tuple[int, int], dict[str, int]] = field(default_factory=dict)  # (stream, dir) -> facts


def _ns(epoch: str) -> int:
    whole, _, frac = epoch.partition(".")
    return int(whole) * 1_000_000_000 + int((frac + "000000000")[:9])


def _last(value: str) -> str:
    return value.split(",")[-1] if value else ""


_POOL = ThreadPoolExecutor(max_workers=os.cpu_count() or 2, thread_name_prefix="tshark")
_RUNS: dict[str, Future[list[Pkt] | str]] = {}  # path -> tshark's frames: one run per file


@pytest.fixture(scope="module", autouse=True)
def _tshark_ahead(request: pytest.FixtureRequest) -> Iterator[None]:
    """Start tshark on every capture the selected tests of this module will read (it is most of the time)."""
    if tshark.available():
        for item in request.session.items:
            spec = getattr(item, "callspec", None)
            if getattr(item, "module", None) is request.module and spec and "path" in spec.params:
                _tshark_started(str(spec.params["path"]))
    yield
    _POOL.shutdown(wait=True, cancel_futures=True)


def _tshark_started(path: str) -> Future[list[Pkt] | str]:
    if path not in _RUNS:
        _RUNS[path] = _POOL.submit(_run_tshark, path)
    return _RUNS[path]


def _tshark(path: str) -> list[Pkt] | str:
    return _tshark_started(path).result()


def _run_tshark(path: str) -> list[Pkt] | str:
    """tshark's TCP frames, or why there are none. Raw sequence numbers: tshark's relative ones depend on
    which packet it saw first, and this oracle should not share that choice with anyone."""
    args = ["-o", "tcp.relative_sequence_numbers:FALSE"]
    args += ["-Y", "tcp && !icmp && !icmpv6 && !sflow", "-T", "fields", "-E", "separator=/t"]
    for name in FIELDS:
        args += ["-e", name]
    run = tshark.run(path, *args, timeout=600)
    if run.returncode != 0 and not run.stdout:
        return f"tshark cannot read it: {run.stderr.strip().splitlines()[-1:]}"
    out: list[Pkt] = []
    for line in run.stdout.splitlines():
        v = dict(zip(FIELDS, line.split("\t"), strict=True))
        if not v["tcp.stream"] or not v["tcp.seq"]:
            continue
        layers = [p for p in v["frame.protocols"].split(":") if p in ("ip", "ipv6", "tcp")]
        inner = layers[layers.index("tcp") - 1] if "tcp" in layers and layers.index("tcp") > 0 else "ip"
        if inner == "ipv6":
            src, ip_len = _last(v["ipv6.src"]), 40 + int(_last(v["ipv6.plen"]) or 0)
        else:
            src, ip_len = _last(v["ip.src"]), int(_last(v["ip.len"]) or 0)
        les = [int(x) for x in v["tcp.options.sack_le"].split(",") if x]
        res = [int(x) for x in v["tcp.options.sack_re"].split(",") if x]
        out.append(
            Pkt(
                frame=int(v["frame.number"]),
                ts_ns=_ns(v["frame.time_epoch"]),
                stream=int(_last(v["tcp.stream"])),
                sender=(src, int(_last(v["tcp.srcport"]))),
                seq=int(_last(v["tcp.seq"])),
                tcp_len=int(_last(v["tcp.len"]) or 0),
                ack=int(_last(v["tcp.ack"])) if _last(v["tcp.flags.ack"]) in ("1", "True") else None,
                syn=_last(v["tcp.flags.syn"]) in ("1", "True"),
                sack=list(zip(les, res, strict=True)),
                ip_len=ip_len,
            )
        )
    return out if out else "tshark finds no TCP frames in it"


def _rel(value: int, base: int) -> int:
    """`value` relative to `base` in sequence space (signed 32 bits: before the base is negative)."""
    d = (value - base) % (1 << 32)
    return d - (1 << 32) if d >= 1 << 31 else d


def _oracle(pkts: list[Pkt], skip: set[int]) -> Oracle:
    by_stream: dict[int, list[Pkt]] = defaultdict(list)
    for p in pkts:
        if p.frame not in skip:
            by_stream[p.stream].append(p)
    oracle = Oracle(fate={}, dirn={}, stream_of={})
    for stream, ps in by_stream.items():
        syn = next((p for p in ps if p.syn and p.ack is None), None)
        synack = next((p for p in ps if p.syn and p.ack is not None), None)
        if syn is not None or synack is not None:
            oracle.handshake.add(stream)
        if syn is not None:
            client = syn.sender
        elif synack is not None:
            client = next((p.sender for p in ps if p.sender != synack.sender), ("?", -1))
        else:
            client = ps[0].sender
        for p in ps:
            oracle.dirn[p.frame] = 0 if p.sender == client else 1
            oracle.stream_of[p.frame] = stream
        for d in (0, 1):
            mine = [p for p in ps if oracle.dirn[p.frame] == d]
            theirs = [p for p in ps if oracle.dirn[p.frame] != d]
            _direction(oracle, stream, d, mine, theirs)
    return oracle


def _direction(oracle: Oracle, stream: int, d: int, mine: list[Pkt], theirs: list[Pkt]) -> None:
    data = [p for p in mine if p.tcp_len > 0]
    acks = [p for p in theirs if p.ack is not None]
    facts = oracle.per_stream.setdefault((stream, d), dict.fromkeys(AGGREGATES, 0))
    facts["acks_seen"] = len(acks)
    if not data:
        return
    base = next((p.seq for p in mine if p.syn), data[0].seq)
    segs: list[Segment] = []
    for p in data:
        start = _rel(p.seq, base) + (1 if p.syn else 0)  # data on a SYN starts after the SYN's number
        segs.append(Segment(p.frame, p.ts_ns, start, start + p.tcp_len, p.ip_len))
    # first time each cumulative acknowledgment level is reached: sort by level, earliest time from there up
    ack_pts = sorted((_rel(p.ack, base), p.ts_ns) for p in acks if p.ack is not None)
    levels = [a for a, _ in ack_pts]
    earliest_from: list[float] = [NONE] * (len(ack_pts) + 1)
    for k in range(len(ack_pts) - 1, -1, -1):
        earliest_from[k] = min(earliest_from[k + 1], ack_pts[k][1])
    blocks = [(_rel(le, base), _rel(re, base)) for p in theirs for le, re in p.sack]
    # later copies: segments overlapping [start, end) start within (start - longest, end)
    by_start = sorted(segs, key=lambda s: s.start)
    starts = [s.start for s in by_start]
    longest = max(s.end - s.start for s in segs)
    delivered_sizes: list[int] = []
    lost_sizes: list[int] = []
    for s in segs:
        acked_at = earliest_from[bisect.bisect_left(levels, s.end)]
        sacked = any(le <= s.start and re >= s.end for le, re in blocks)
        lo = bisect.bisect_right(starts, s.start - longest)
        hi = bisect.bisect_left(starts, s.end)
        copied_at = min(
            (o.ts_ns for o in by_start[lo:hi] if o.ts_ns > s.ts_ns and o.start < s.end and o.end > s.start),
            default=NONE,
        )
        if (acked_at != NONE and copied_at >= acked_at) or (sacked and copied_at == NONE):
            oracle.fate[s.frame] = 1
            delivered_sizes.append(s.ip_len)
        elif copied_at < acked_at:
            oracle.fate[s.frame] = -1
            lost_sizes.append(s.ip_len)
        else:
            oracle.fate[s.frame] = 0
    best = max(delivered_sizes, default=0)
    facts["delivered_segments"] = len(delivered_sizes)
    facts["delivered_max_ip"] = best
    facts["lost_segments"] = len(lost_sizes)
    facts["lost_min_ip"] = min(lost_sizes, default=0)
    facts["lost_max_ip"] = max(lost_sizes, default=0)
    facts["lost_not_larger"] = sum(1 for x in lost_sizes if x <= best)


# ----------------------------------------------------------------------------------------- pcapmtu side
@cache
def _compared(path: str) -> tuple[Oracle, pd.DataFrame, np.ndarray, pd.DataFrame] | str:
    """The oracle and pcapmtu's packets, segment_fate and delivery for one capture (or why no TCP)."""
    pkts = _tshark(path)
    if isinstance(pkts, str):
        return pkts
    cap = pcapmtu.read(path)
    fate = segment_fate(cap.packets, cap.sack)
    facts = delivery(cap.packets, fate, len(cap.flows))
    copies = set(cap.packets["frame"][cap.packets["dup_copy"]].tolist())  # interface copies: left out
    return _oracle(pkts, copies), cap.packets, fate, facts


def _both(path: Path) -> tuple[Oracle, pd.DataFrame, np.ndarray, pd.DataFrame]:
    require_tool("tshark")
    got = _compared(str(path))
    if isinstance(got, str):
        pytest.skip(got)
    return got


@pytest.mark.oracle
@pytest.mark.parametrize("path", _params())
def test_segment_fates_agree_with_tshark(path: Path) -> None:
    """Per frame: delivered / lost / unresolved as computed from tshark's fields equals segment_fate."""
    oracle, packets, fate, _facts = _both(path)
    ours = dict(zip(packets["frame"].tolist(), fate.tolist(), strict=True))
    frames = set(oracle.fate) | {f for f, v in ours.items() if v != 0}
    differ = sorted(f for f in frames if oracle.fate.get(f, 0) != ours.get(f, 0))
    assert not differ, (
        "fates differ (frame: tshark oracle vs pcapmtu): "
        + ", ".join(f"{f}: {oracle.fate.get(f, 0)} vs {ours.get(f, 0)}" for f in differ[:12])
        + (f" ... {len(differ)} frames" if len(differ) > 12 else "")
    )


@pytest.mark.oracle
@pytest.mark.parametrize("path", _params())
def test_delivery_per_connection_agrees_with_tshark(path: Path) -> None:
    """Per connection and direction: counts and sizes of delivered and lost segments, and receiver ACKs."""
    oracle, packets, _fate, facts = _both(path)
    rows = packets[(packets["conn"] >= 0) & ~packets["dup_copy"]]
    conn_of = dict(zip(rows["frame"].tolist(), rows["conn"].tolist(), strict=True))
    dir_of = dict(zip(rows["frame"].tolist(), rows["dir"].tolist(), strict=True))
    # each tshark stream is one pcapmtu connection, and both sides name the same client
    stream_conn: dict[int, set[int]] = defaultdict(set)
    for f, s in oracle.stream_of.items():
        stream_conn[s].add(conn_of.get(f, -1))
    split = {s: c for s, c in stream_conn.items() if len(c) != 1 or -1 in c}
    assert not split, f"tshark streams that are not exactly one pcapmtu connection: {split}"
    # With a handshake the client is who sent the SYN, on both sides. Without one, tshark's stream has no
    # client and pcapmtu names the higher port one (a labelling choice, not a delivery fact): there the
    # oracle's directions are matched to pcapmtu's by who sent the frames.
    turned = {oracle.stream_of[f] for f, d in oracle.dirn.items() if dir_of[f] != d}
    wrong = sorted(turned & oracle.handshake)
    assert not wrong, f"client and server swapped in tshark streams {wrong} (which have a handshake)"
    for s in turned:
        frames = [f for f, t in oracle.stream_of.items() if t == s]
        assert all(dir_of[f] != oracle.dirn[f] for f in frames), f"stream {s}: directions mixed"
    differ: list[str] = []
    for (stream, d), theirs in sorted(oracle.per_stream.items()):
        (conn,) = stream_conn[stream]
        tag = ("c2s", "s2c")[1 - d if stream in turned else d]
        for name, value in theirs.items():
            ours = int(facts[f"{name}_{tag}"].iloc[conn])
            if ours != value:
                differ.append(f"stream {stream} (conn {conn}) {name}_{tag}: tshark {value}, pcapmtu {ours}")
    assert not differ, "\n".join(differ[:20])


# --------------------------------------------------------------------------------- reaching the diagnosis
BLACKHOLE_SERVER = SAMPLES / "blackhole_tls13" / "server.pcap"


def _overlaps(a: Pkt, b: Pkt) -> bool:
    """Whether two segments of one direction share a byte (raw sequence numbers, modulo 2**32)."""
    return _rel(b.seq, a.seq) < a.tcp_len and _rel(b.seq, a.seq) + b.tcp_len > 0


@pytest.mark.oracle
def test_lost_full_size_segments_reach_the_diagnosis() -> None:
    """At the server of a TLS 1.3 black hole, the hanging 443 transfer: its 1500-byte packets were sent, lost
    and never delivered, smaller ones were; and tshark agrees that no client ACK or SACK block covered any
    1500-byte server segment before it was re-sent (or ever, for those never re-sent)."""
    oracle = _both(BLACKHOLE_SERVER)[0]
    pkts = _tshark(str(BLACKHOLE_SERVER))
    assert not isinstance(pkts, str), pkts
    sent = [p for p in pkts if p.sender[1] == 443 and p.tcp_len > 0]
    resent = {
        p.stream for p in sent if p.ip_len == 1500 and any(q.stream == p.stream and q.ts_ns > p.ts_ns and _overlaps(p, q) for q in sent)
    }  # fmt: skip
    assert len(resent) == 1, f"expected one 443 stream re-sending 1500-byte segments, got {sorted(resent)}"
    (stream,) = resent
    full = [p for p in sent if p.stream == stream and p.ip_len == 1500]
    replies = [p for p in pkts if p.stream == stream and p.sender[1] != 443]
    for p in full:
        again = min(
            (q.ts_ns for q in sent if q.stream == stream and q.ts_ns > p.ts_ns and _overlaps(p, q)),
            default=NONE,
        )
        end = (p.seq + p.tcp_len) % (1 << 32)
        acked = [a.frame for a in replies if a.ts_ns < again and a.ack is not None and _rel(a.ack, end) >= 0]
        sacked = [
            a.frame for a in replies if a.ts_ns < again and any(_rel(le, p.seq) <= 0 and _rel(re, end) >= 0 for le, re in a.sack)
        ]  # fmt: skip
        assert not acked and not sacked, (
            f"frame {p.frame}: client ACKs {acked} / SACKs {sacked} cover it first"
        )
    facts = oracle.per_stream[(stream, 1)]
    assert facts["lost_max_ip"] == 1500 and 0 < facts["delivered_max_ip"] < 1500, facts

    result = pcapmtu.analyze(server=BLACKHOLE_SERVER)
    flows = result.context.flows("server")
    frames = [p.frame for p in pkts if p.stream == stream]
    row = flows[(flows["first_frame"] == min(frames)) & (flows["last_frame"] == max(frames))]
    assert len(row) == 1 and int(row["server_port"].iloc[0]) == 443, row
    flow = row.iloc[0]
    assert bool(flow["full_sent_s2c"]) is True
    assert bool(flow["full_delivered_s2c"]) is False
    assert int(flow["lost_max_ip_s2c"]) == 1500
    assert int(flow["largest_delivered_s2c"]) == facts["delivered_max_ip"] < 1500
