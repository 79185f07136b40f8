"""Wireshark's word on the evidence: ask tshark, through pyshark, about each finding's evidence frames and
compare what its dissectors and expert info say with what the finding claims (docs/wireshark.md).

Bounded: one tshark run per capture that holds evidence frames, with a `frame.number in {...}` display filter
and at most `max_frames` frames asked per capture. tshark still reads the whole file (its TCP analysis needs the
frames before), but only the evidence frames are dissected into output and parsed by pyshark.

Each finding code has a row in `CLAIMS`: per kind of frame (what pcapmtu's own tables say the frame is: a SYN,
a SYN-ACK, a TCP segment, an ICMP size report, a ping), the checks that must hold in Wireshark's decode. Every
frame is also checked against pcapmtu's own decode of it (addresses, ports, IP length, TCP flags, MSS option,
the quoted header of an ICMP error).
"""

from __future__ import annotations

import operator
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pandas as pd

from ..evidence import frames_filter
from ..ingest.tcp.connections import COPY_IDENTITY

if TYPE_CHECKING:  # annotations only (analysis imports this module when asked)
    from .analysis import Analysis

MAX_FRAMES = 200  # per capture: more evidence frames than this are not asked about
TSHARK_TIMEOUT = 600.0  # seconds for one tshark run over one capture (it reads the whole file)
INSTALL = "pip install 'pcapmtu[deep]'"
RETRANSMISSION = ("retransmission", "fast_retransmission", "spurious_retransmission")
ANALYSIS_FLAGS = RETRANSMISSION + (
    "lost_segment",
    "ack_lost_segment",
    "out_of_order",
    "duplicate_ack",
    "zero_window",
    "keep_alive",
    "previous_segment_not_captured",
)
TLS_HANDSHAKE = {
    "1": "ClientHello",
    "2": "ServerHello",
    "4": "NewSessionTicket",
    "8": "EncryptedExtensions",
    "11": "Certificate",
    "12": "ServerKeyExchange",
    "14": "ServerHelloDone",
    "16": "ClientKeyExchange",
    "20": "Finished",
}
COLUMNS = ["code", "capture", "frame", "claim", "wireshark", "expert", "status", "why"]


# ------------------------------------------------------------------------------------------ Wireshark's view
@dataclass
class WsFrame:
    """What Wireshark said about one frame: every field by its Wireshark name (outermost layer first); the
    fields of the packet an ICMP error quotes are named `quoted.ip.src`, `quoted.tcp.srcport`, ..."""

    number: int
    protocols: str
    fields: dict[str, list[str]] = field(default_factory=dict)
    expert: list[str] = field(default_factory=list)

    def get(self, name: str) -> str | None:
        values = self.fields.get(name)
        return values[-1] if values else None  # the innermost (an overlay's inner packet)

    def num(self, name: str) -> int | None:
        value = self.get(name)
        try:
            return int(value, 0) if value is not None else None
        except ValueError:
            return None

    def has(self, name: str) -> bool:
        return name in self.fields

    @property
    def ipv(self) -> int:
        return 6 if self.has("ipv6.src") else 4 if self.has("ip.src") else 0

    @property
    def ip_len(self) -> int | None:
        if self.ipv == 6:
            plen = self.num("ipv6.plen")
            return None if plen is None else plen + 40
        return self.num("ip.len")

    def addr(self, end: str) -> str | None:
        return self.get(f"ipv6.{end}" if self.ipv == 6 else f"ip.{end}")

    def port(self, end: str) -> int | None:
        return self.num(f"tcp.{end}port") if self.has("tcp.srcport") else self.num(f"udp.{end}port")

    def flag(self, name: str) -> bool:
        return self.get(f"tcp.flags.{name}") in ("1", "True")

    @property
    def analysis(self) -> list[str]:
        return [a for a in ANALYSIS_FLAGS if self.has(f"tcp.analysis.{a}")]

    @property
    def size_report(self) -> tuple[str, int | None] | None:
        """(kind, MTU) of an ICMP fragmentation-needed / ICMPv6 packet-too-big, else None."""
        if self.get("icmp.type") == "3" and self.get("icmp.code") == "4":
            return "frag-needed", self.num("icmp.mtu")
        if self.get("icmpv6.type") == "2":
            return "packet-too-big", self.num("icmpv6.mtu")
        return None

    def quoted(self) -> tuple[str | None, int | None, str | None, int | None, int | None]:
        """(src, sport, dst, dport, IP length) of the packet an ICMP error quotes."""
        v6 = self.has("quoted.ipv6.src")
        ip = "quoted.ipv6" if v6 else "quoted.ip"
        proto = "quoted.tcp" if self.has("quoted.tcp.srcport") else "quoted.udp"
        plen = self.num("quoted.ipv6.plen")
        length = (plen + 40 if plen is not None else None) if v6 else self.num("quoted.ip.len")
        return (
            self.get(f"{ip}.src"),
            self.num(f"{proto}.srcport"),
            self.get(f"{ip}.dst"),
            self.num(f"{proto}.dstport"),
            length,
        )

    def summary(self) -> str:
        """One line, as a person reads Wireshark's packet list and details."""
        parts = [self.protocols]
        if self.ipv:
            src, dst = self.addr("src"), self.addr("dst")
            sport, dport = self.port("src"), self.port("dst")
            ends = f"{src}:{sport} > {dst}:{dport}" if sport is not None else f"{src} > {dst}"
            df = " DF" if self.get("ip.flags.df") == "1" else ""
            parts.append(f"{ends} len {self.ip_len}{df}")
        if self.has("tcp.flags.str"):
            flags = (self.get("tcp.flags.str") or "").replace("\u00b7", "").strip()
            parts.append(f"[{flags}] seq {self.get('tcp.seq')} tcp.len {self.get('tcp.len')}")
        if self.has("tcp.options.mss_val"):
            parts.append(f"MSS {self.get('tcp.options.mss_val')}")
        report = self.size_report
        if report:
            qsrc, qsport, qdst, qdport, qlen = self.quoted()
            parts.append(f"{report[0]} MTU {report[1]} quoting {qsrc}:{qsport} > {qdst}:{qdport} len {qlen}")
        elif self.has("icmp.type") or self.has("icmpv6.type"):
            kind = "icmpv6" if self.has("icmpv6.type") else "icmp"
            parts.append(f"{kind} type {self.get(kind + '.type')} code {self.get(kind + '.code')}")
        tls = [TLS_HANDSHAKE.get(t, t) for t in self.fields.get("tls.handshake.type", [])]
        if tls:
            parts.append("TLS " + ", ".join(tls))
        if self.analysis:
            parts.append("tcp.analysis: " + ", ".join(self.analysis))
        return "; ".join(parts)


def _read(packet) -> WsFrame:
    """A pyshark packet (PDML) as a WsFrame, through pyshark's public layer API."""
    fields: dict[str, list[str]] = {}
    expert: list[str] = []
    for layer in [packet.frame_info, *packet.layers]:
        icmp = layer.layer_name in ("icmp", "icmpv6")
        for sanitized in layer.field_names:  # one name per field container
            container = layer.get_field(sanitized) if sanitized else None
            for i, f in enumerate(getattr(container, "all_fields", ())):
                name = getattr(f, "name", "") or ""
                if not name:
                    continue
                if name == "_ws.expert":
                    expert.append(str(f.showname or "").removeprefix("Expert Info "))
                # the packet an ICMP error quotes is dissected inside the icmp layer: its headers, and a quoted
                # ICMP's fields (the second of a name), are named apart
                quoted = icmp and (name.split(".")[0] != layer.layer_name or i > 0)
                key = f"quoted.{name}" if quoted and not name.startswith("_ws.") else name
                fields.setdefault(key, []).append(str(f.show if f.show is not None else f.showname or ""))
    protocols = ":".join(layer.layer_name for layer in packet.layers)
    return WsFrame(int(packet.frame_info.number), protocols, fields, list(dict.fromkeys(expert)))


# ------------------------------------------------------------------------------------------ pcapmtu's view
@dataclass
class Subject:
    """What pcapmtu says about one evidence frame of one finding: the finding's facts (its evidence, the
    connection's endpoints and sizes from the flows table) and pcapmtu's own decode of the frame."""

    code: str
    role: str
    kind: str  # syn, synack, tcp, icmp (a size report), ping (an echo request), other, missing
    facts: dict
    row: dict  # pcapmtu's packets row (and icmp row) for this frame
    twin: WsFrame | None = None  # Wireshark's decode of the frame this one repeats (Q004), asked alongside


def _kind(row: dict) -> str:
    if not row:
        return "missing"
    if row.get("size_report"):
        return "icmp"
    if row.get("proto") == 6:
        flags = int(row.get("tcp_flags", 0))
        if flags & 2:
            return "synack" if flags & 16 else "syn"
        return "tcp"
    if row.get("icmp_type") in (8, 128):
        return "ping"
    return "other"


# ------------------------------------------------------------------------------------------ the checks
@dataclass(frozen=True)
class Result:
    claim: str
    said: str
    ok: bool


Check = Callable[[WsFrame, Subject], Result | None]  # None: does not apply to this frame


def _ends(s: Subject, who: str) -> tuple[str, int]:
    f = s.facts
    return (
        (str(f["client_ip"]), int(f["client_port"]))
        if who == "client"
        else (str(f["server_ip"]), int(f["server_port"]))
    )


def sent_by(who: str) -> Check:
    """The frame is the connection's packet from `who` (client, server, or a fact naming one: "sender")."""

    def check(ws: WsFrame, s: Subject) -> Result | None:
        if "client_ip" not in s.facts:
            return None
        sender = s.facts.get(who, who)
        src, sport = _ends(s, sender)
        dst, dport = _ends(s, "server" if sender == "client" else "client")
        got = (ws.addr("src"), ws.port("src"), ws.addr("dst"), ws.port("dst"))
        return Result(
            f"from the {sender} {src}:{sport} to {dst}:{dport}",
            f"{got[0]}:{got[1]} > {got[2]}:{got[3]}",
            got == (src, sport, dst, dport),
        )

    return check


_OPS = {"<": operator.lt, "<=": operator.le, "==": operator.eq, ">": operator.gt, ">=": operator.ge}


def compare(what: str, op: str, fact: str, read: Callable[[WsFrame], int | None], when=None) -> Check:
    """A number Wireshark shows (`read`), compared with a fact of the finding."""

    def check(ws: WsFrame, s: Subject) -> Result | None:
        want = s.facts.get(fact)
        if want is None or (when is not None and not when(s)):
            return None
        got = read(ws)
        return Result(f"{what} {op} {want}", f"{what} {got}", got is not None and _OPS[op](got, int(want)))

    return check


def ip_len(op: str, fact: str, when=None) -> Check:
    return compare("IP length", op, fact, lambda ws: ws.ip_len, when)


def tcp_len(op: str, fact: str) -> Check:
    return compare("TCP payload", op, fact, lambda ws: ws.num("tcp.len"))


def mss(fact: str) -> Check:
    return compare("MSS option", "==", fact, lambda ws: ws.num("tcp.options.mss_val"))


def flags(syn: bool | None = None, ack: bool | None = None, reset: bool | None = None) -> Check:
    want = {k: v for k, v in (("syn", syn), ("ack", ack), ("reset", reset)) if v is not None}
    text = ", ".join(f"{k.upper()} {'set' if v else 'not set'}" for k, v in want.items())

    def check(ws: WsFrame, s: Subject) -> Result:
        if not ws.has("tcp.flags"):
            return Result(text, "not TCP", False)
        got = {k: ws.flag(k) for k in want}
        said = ", ".join(f"{k.upper()} {'set' if v else 'not set'}" for k, v in got.items())
        return Result(text, said, got == want)

    return check


def has_data(ws: WsFrame, s: Subject) -> Result:
    n = ws.num("tcp.len")
    return Result("carries data", f"tcp.len {n}", bool(n))


def retransmitted(ws: WsFrame, s: Subject) -> Result:
    got = [a for a in ws.analysis if a in RETRANSMISSION]
    return Result(
        "a retransmission", "tcp.analysis." + got[0] if got else "not flagged as a retransmission", bool(got)
    )


def retransmitted_after_first(ws: WsFrame, s: Subject) -> Result | None:
    return retransmitted(ws, s) if s.facts.get("position", 0) > 0 else None


def same_segment(ws: WsFrame, s: Subject) -> Result | None:
    want = s.facts.get("first_seq")
    if want is None:
        return None
    got = ws.num("tcp.seq_raw")
    return Result(f"the same segment (raw seq {want})", f"tcp.seq_raw {got}", got == want)


def size_report(ws: WsFrame, s: Subject) -> Result:
    """An ICMP fragmentation-needed / packet-too-big with the finding's MTU, about the connection's sender."""
    report = ws.size_report
    want = s.facts.get("mtu")
    claim = f"ICMP size report, next-hop MTU {want}" if want is not None else "ICMP size report"
    if report is None:
        kind = "icmpv6" if ws.has("icmpv6.type") else "icmp"
        return Result(claim, f"{kind}.type {ws.get(kind + '.type')} code {ws.get(kind + '.code')}", False)
    ok = want is None or report[1] == int(want)
    return Result(claim, f"{report[0]} MTU {report[1]}", ok)


def quotes_sender(ws: WsFrame, s: Subject) -> Result | None:
    if "client_ip" not in s.facts or "sender" not in s.facts:
        return None
    src, sport = _ends(s, s.facts["sender"])
    qsrc, qsport, _qdst, _qdport, _len = ws.quoted()
    return Result(
        f"quotes the {s.facts['sender']}'s packet from {src}:{sport}",
        f"quotes {qsrc}:{qsport}",
        (qsrc, qsport) == (src, sport),
    )


def no_server_hello(ws: WsFrame, s: Subject) -> Result:
    types = [TLS_HANDSHAKE.get(t, t) for t in ws.fields.get("tls.handshake.type", [])]
    return Result(
        "no TLS ServerHello",
        "TLS " + ", ".join(types) if types else "no TLS handshake",
        "ServerHello" not in types,
    )


def syn_from(fact: str) -> Check:
    def check(ws: WsFrame, s: Subject) -> Result | None:
        want = s.facts.get(fact)
        return (
            None
            if want is None
            else Result(f"sent by {want}", f"from {ws.addr('src')}", ws.addr("src") == str(want))
        )

    return check


def echo_request(ws: WsFrame, s: Subject) -> Result:
    kind = "icmpv6" if ws.ipv == 6 else "icmp"
    t = ws.get(f"{kind}.type")
    df = ws.ipv == 6 or ws.get("ip.flags.df") == "1"
    ok = t in ("8", "128") and df and ws.addr("dst") == str(s.facts.get("target"))
    return Result(
        f"echo request with DF to {s.facts.get('target')}",
        f"{kind}.type {t}{' DF' if df else ''} to {ws.addr('dst')}",
        ok,
    )


def reset_by(ws: WsFrame, s: Subject) -> Result | None:
    who = s.facts.get("reset_by")  # T004's evidence: the sender of the RST it cites
    return sent_by(who)(ws, s) if who in ("client", "server") else None


def cut(ws: WsFrame, s: Subject) -> Result:
    cap, wire = ws.num("frame.cap_len"), ws.num("frame.len")
    return Result(
        "cut by the snapshot length",
        f"frame.cap_len {cap} of frame.len {wire}",
        None not in (cap, wire) and cap < wire,
    )


def complained(ws: WsFrame, s: Subject) -> Result:
    bad = ws.has("_ws.malformed") or any(e.startswith(("(Error", "(Warning")) for e in ws.expert)
    return Result(
        "not fully decodable", "malformed / expert warning" if bad else "decoded without complaint", bad
    )


# what makes two frames one packet seen twice: its IP ID, ends, sequence, ACK, flags, length and window
SAME_PACKET = (
    *("ip.id", "tcp.srcport", "tcp.dstport", "tcp.seq_raw", "tcp.ack_raw", "tcp.flags", "tcp.len"),
    "tcp.window_size_value",
)


def seen_twice(ws: WsFrame, s: Subject) -> Result:
    """A -i any copy: Wireshark shows the same packet in an earlier frame (`facts["twin"]`, asked alongside),
    or its TCP analysis, which does not know the interfaces apart, flags the bytes as a repeat.

    Both are needed: a pure ACK whose copy was written after the next packet of its direction (two CPUs
    writing to one capture) is flagged by nothing in Wireshark's analysis, and a twin that is itself cut
    short or missing leaves only the analysis flags to go on."""
    got = [a for a in ws.analysis if a in RETRANSMISSION + ("duplicate_ack", "out_of_order")]
    cooked = ws.has("sll.pkttype") or ws.has("sll.ifindex")
    twin, same = s.twin, False
    said = ["Linux cooked header" if cooked else "no Linux cooked header"]
    if twin is not None:
        differs = [k for k in SAME_PACKET if ws.get(k) != twin.get(k)] + (
            [] if ws.addr("src") == twin.addr("src") and ws.addr("dst") == twin.addr("dst") else ["addresses"]
        )
        same = not differs
        said.append(
            f"frame {twin.number} holds the same packet (IP ID, ends, seq, ack, flags, length, window)"
            if same
            else f"frame {twin.number} differs in {', '.join(differs)}"
        )
    said.append("tcp.analysis." + got[0] if got else "not flagged as a repeat")
    return Result(
        "a repeat of a packet already captured (cooked -i any capture)"
        + (f": frame {s.facts['twin']}" if "twin" in s.facts else ""),
        "; ".join(said),
        cooked and (same or bool(got)),
    )


def is_tcp(ws: WsFrame, s: Subject) -> Result:
    return Result("a TCP packet", ws.protocols, ws.has("tcp.srcport"))


def not_syn(ws: WsFrame, s: Subject) -> Result:
    return Result(
        "not a SYN (the handshake is not in the capture)",
        f"SYN {'set' if ws.flag('syn') else 'not set'}",
        ws.has("tcp.flags") and not ws.flag("syn"),
    )


def no_mss_option(ws: WsFrame, s: Subject) -> Result:
    mss_val = ws.num("tcp.options.mss_val")
    said = "no MSS option" if mss_val is None else f"MSS option {mss_val}"
    return Result("no MSS option (cut off by the snap length, or never sent)", said, mss_val is None)


def server_data_or_client_close(ws: WsFrame, s: Subject) -> Result | None:
    """H001's frames: the server's last data segment, and the client's FIN or RST after it."""
    if "client_ip" not in s.facts:
        return None
    from_server = (ws.addr("src"), ws.port("src")) == _ends(s, "server")
    if from_server:
        n = ws.num("tcp.len")
        return Result("the server's last data segment", f"from the server, tcp.len {n}", bool(n))
    closes = ws.flag("fin") or ws.flag("reset")
    from_client = (ws.addr("src"), ws.port("src")) == _ends(s, "client")
    said = f"from {'the client' if from_client else 'elsewhere'}, FIN or RST {'set' if closes else 'not set'}"
    return Result("the client's FIN or RST", said, from_client and closes)


def _not_at_server(s: Subject) -> bool:
    return not s.facts.get("at_server")


SYN = flags(syn=True, ack=False)
SYNACK = flags(syn=True, ack=True)

# What each finding says about its evidence frames, by the kind of frame pcapmtu's own tables say it is.
# A kind missing here is a frame the finding should not have named: it is flagged.
CLAIMS: dict[str, dict[str, tuple[Check, ...]]] = {
    # the server's packets that reached this point: none full-size (unless taken at the server, which sent them)
    "B001": {k: (sent_by("server"), ip_len("<", "server_full", _not_at_server)) for k in ("tcp", "synack")},
    "B002": {"tcp": (sent_by("client"), has_data, ip_len(">=", "client_full"), retransmitted)},
    "B003": {
        "tcp": (sent_by("server"), has_data, tcp_len("<=", "payload_after"), tcp_len("<", "server_mss"))
    },
    "B004": {"icmp": (size_report, quotes_sender), "tcp": (sent_by("sender"), has_data, ip_len("<=", "mtu"))},
    "B005": {"icmp": (size_report, quotes_sender), "tcp": (sent_by("sender"), has_data, ip_len(">", "mtu"))},
    "M001": {"syn": (SYN, syn_from("client"), mss("mss"))},
    "M002": {"syn": (SYN, mss("mss_expected"))},
    "M003": {"icmp": (size_report,)},
    "M004": {
        "syn": (SYN, sent_by("client"), mss("mss_client")),
        "synack": (SYNACK, sent_by("server"), mss("mss_server")),
    },
    "M005": {"ping": (echo_request, ip_len("==", "size"))},
    "M006": {"synack": (SYNACK, mss("mss_near"))},
    "Q001": {k: (cut,) for k in ("syn", "synack", "tcp", "icmp", "ping", "other")},
    "Q002": {k: (complained,) for k in ("syn", "synack", "tcp", "icmp", "ping", "other")},
    "Q003": {"tcp": (has_data, ip_len(">", "offload_limit"))},
    "Q004": {k: (seen_twice,) for k in ("syn", "synack", "tcp")},
    "S001": {
        "tcp": (sent_by("server"), flags(syn=False), ip_len("<=", "largest_server_packet"), no_server_hello)
    },
    "T001": {
        "tcp": (
            sent_by("direction"),
            has_data,
            same_segment,
            retransmitted_after_first,
            ip_len("<=", "segment_ip_len"),
        )
    },
    "T002": {"syn": (SYN, sent_by("client"))},
    "T003": {"syn": (SYN, sent_by("client"))},
    "T004": {"tcp": (flags(reset=True), reset_by), "synack": (flags(reset=True), reset_by)},
    "H001": {"tcp": (server_data_or_client_close,)},
    # the first packet captured: not a SYN; or the SYN-ACK (its SYN not captured); or a SYN without its MSS
    "T005": {"tcp": (not_syn,), "synack": (SYNACK,), "syn": (SYN, no_mss_option)},
    "X002": {"tcp": (has_data,)},
    "X003": {k: (is_tcp,) for k in ("syn", "synack", "tcp")},
}
ABOUT = {
    "syn": "SYN",
    "synack": "SYN-ACK",
    "tcp": "TCP segment",
    "icmp": "ICMP size report",
    "ping": "echo request",
    "other": "non-TCP packet",
    "missing": "frame",
}


def decoded_alike(ws: WsFrame, s: Subject) -> Result | None:
    """pcapmtu's own decode of the frame against Wireshark's: addresses, ports, IP length, flags, MSS."""
    r = s.row
    if not r or not ws.ipv or r.get("status", "ok") != "ok":
        return None
    mine = [str(r["src"]), str(r["dst"]), int(r["ip_len"])]
    theirs = [ws.addr("src"), ws.addr("dst"), ws.ip_len]
    if r.get("proto") == 6 and ws.has("tcp.srcport"):
        f = int(r["tcp_flags"])
        mine += [int(r["sport"]), int(r["dport"]), bool(f & 2), bool(f & 16), bool(f & 4), int(r["mss"])]
        theirs += [
            ws.port("src"),
            ws.port("dst"),
            ws.flag("syn"),
            ws.flag("ack"),
            ws.flag("reset"),
            ws.num("tcp.options.mss_val") or 0,
        ]
    if r.get("size_report"):
        q = ws.quoted()
        mine += [
            int(r["mtu"]),
            str(r["quoted_src"]),
            int(r["quoted_sport"]),
            str(r["quoted_dst"]),
            int(r["quoted_dport"]),
        ]
        theirs += [
            (ws.size_report or ("", None))[1],
            q[0],
            -1 if q[1] is None else q[1],
            q[2],
            -1 if q[3] is None else q[3],
        ]
    diff = [f"{a} vs {b}" for a, b in zip(mine, theirs, strict=True) if a != b]
    return Result(
        "pcapmtu decodes it alike (addresses, ports, length, flags, MSS, ICMP quote)",
        "differs: " + ", ".join(diff) if diff else "alike",
        not diff,
    )


# ------------------------------------------------------------------------------------------ the run
@dataclass
class WiresharkCheck:
    """Rows of (finding, frame) with pcapmtu's claim beside Wireshark's decode; `unavailable` is the one-line
    reason when tshark or pyshark is missing (the rows are then empty)."""

    rows: pd.DataFrame
    unavailable: str = ""
    tshark_runs: int = 0
    frames_asked: int = 0
    not_asked: int = 0  # evidence frames beyond max_frames per capture
    max_frames: int = MAX_FRAMES
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def disagreements(self) -> pd.DataFrame:
        return self.rows[self.rows["status"] == "disagree"]

    def summary(self) -> str:
        """One line."""
        if self.unavailable:
            return self.unavailable
        n = self.rows["status"].value_counts()
        line = (
            f"Wireshark checked {self.frames_asked} evidence frames in {self.tshark_runs} tshark run(s): "
            f"{int(n.get('agree', 0))} agree, {int(n.get('disagree', 0))} disagree"
        )
        if self.not_asked:
            line += f", {self.not_asked} not asked (over {self.max_frames} per capture)"
        return line + f" ({self.seconds:.1f} s)"

    def to_json(self) -> dict:
        return {
            "summary": self.summary(),
            "unavailable": self.unavailable or None,
            "tshark_runs": self.tshark_runs,
            "frames_asked": self.frames_asked,
            "notes": list(self.notes),
            "rows": self.rows.to_dict(orient="records"),
        }

    def _shown(self, only_disagreements: bool) -> pd.DataFrame:
        return self.disagreements if only_disagreements else self.rows

    def rich_table(self, only_disagreements: bool = False):
        """A rich Table for the terminal; capture text made printable and rich markup escaped."""
        from rich.markup import escape
        from rich.table import Table

        from ..textsafe import printable

        def safe(value) -> str:
            return escape(printable(value, 1000))

        table = Table(title="Wireshark's word on the evidence", caption=safe(self.summary()))
        for col in ("code", "capture", "frame", "pcapmtu claims", "Wireshark says", "status"):
            table.add_column(col)
        for r in self._shown(only_disagreements).itertuples():
            said = r.wireshark + (f"; expert: {r.expert}" if r.expert else "")
            status = "[green]agree[/]" if r.status == "agree" else f"[red]{safe(r.status)}[/]: {safe(r.why)}"
            table.add_row(safe(r.code), safe(r.capture), str(r.frame), safe(r.claim), safe(said), status)
        return table

    def html(self, only_disagreements: bool = False) -> str:
        """An HTML fragment (a <section> with a table); every value from a capture escaped."""
        from ..textsafe import html_text

        head = "".join(
            f"<th>{c}</th>"
            for c in ("code", "capture", "frame", "pcapmtu claims", "Wireshark says", "expert info", "status")
        )
        body = []
        for r in self._shown(only_disagreements).itertuples():
            cells = [html_text(v, 1000) for v in (r.code, r.capture, r.frame, r.claim, r.wireshark, r.expert)]
            status = html_text(r.status) + (f": {html_text(r.why, 1000)}" if r.why else "")
            body.append(
                f'<tr class="{html_text(r.status)}">'
                + "".join(f"<td>{c}</td>" for c in cells)
                + f"<td>{status}</td></tr>"
            )
        return (
            f'<section class="wireshark"><h2>Wireshark\'s word</h2><p>{html_text(self.summary(), 1000)}</p>'
            f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></section>"
        )

    def markdown(self, only_disagreements: bool = False) -> str:
        """A Markdown section with a table; a cell from a capture as it is when inert, else a code span."""
        from ..textsafe import markdown, md_capture

        lines = ["## Wireshark's word", "", markdown(self.summary(), 1000), ""]
        rows = self._shown(only_disagreements)
        if len(rows):
            lines += [
                "| code | capture | frame | pcapmtu claims | Wireshark says | expert info | status |",
                "|---|---|---|---|---|---|---|",
            ]
            for r in rows.itertuples():
                status = r.status + (f": {r.why}" if r.why else "")
                cells = (r.code, r.capture, r.frame, r.claim, r.wireshark, r.expert, status)
                lines.append("| " + " | ".join(md_capture(c, 1000, table=True) for c in cells) + " |")
        return "\n".join(lines) + "\n"


def _missing(what: str) -> WiresharkCheck:
    return WiresharkCheck(pd.DataFrame(columns=COLUMNS), unavailable=what)


def tools(tshark: str | None = None) -> tuple[str | None, str]:
    """(tshark path, "") when the check can run, else (None, the one-line reason)."""
    try:
        import pyshark  # noqa: F401
    except ImportError:
        return None, f"Wireshark check skipped: pyshark is not installed ({INSTALL})"
    path = tshark or shutil.which("tshark")
    if not path:
        return None, "Wireshark check skipped: tshark is not on PATH (install Wireshark's tshark)"
    return path, ""


def _subjects(analysis: Analysis, finding) -> list[tuple[str, int, dict]]:
    """(role, frame, facts) for every evidence frame of a finding."""
    ctx = analysis.context
    role = finding.capture
    if not role or role not in analysis.captures:
        return []
    facts = dict(finding.evidence or {})
    if finding.conn >= 0:
        flows = ctx.flows(role)  # the capture's flows with what pcapmtu derived: full sizes, headers
        hit = flows[flows["conn"] == finding.conn]
        if len(hit):
            flow = hit.iloc[0]
            hdr, limit = int(flow["hdr"]), max(int(flow["mss_client"]), int(flow["mss_server"]))
            facts = {
                "client_ip": str(flow["client_ip"]),
                "client_port": int(flow["client_port"]),
                "server_ip": str(flow["server_ip"]),
                "server_port": int(flow["server_port"]),
                "mss_client": int(flow["mss_client"]),
                "mss_server": int(flow["mss_server"]),
                "server_full": int(flow["server_full"]),
                "client_full": int(flow["client_full"]),
                "closed_by": str(flow["closed_by"] or ""),
                **facts,
            }
            if int(flow["server_full"]) > hdr:
                facts["server_mss"] = int(flow["server_full"]) - hdr  # the full-size segment's payload
            if limit:
                facts["offload_limit"] = limit + hdr
    v = analysis.vantage.get(role)
    facts["at_server"] = v is not None and getattr(v, "position", "") == "server"
    if finding.code == "M002":
        facts["mss_expected"] = facts.get("mss_before")
    out = [(role, int(fr), facts) for fr in finding.frames]
    if finding.code == "T001" and finding.frames:
        p = analysis.captures[role].packets
        first = p.loc[p["frame"] == finding.frames[0], "seq"]
        for i, (_r, _f, fa) in enumerate(out):
            out[i] = (_r, _f, {**fa, "position": i, "first_seq": int(first.iloc[0]) if len(first) else None})
    if finding.code == "M002" and ctx.far_role and facts.get("host_syn_frames"):
        far = {**facts, "mss_expected": facts.get("mss_after")}
        out += [(ctx.far_role, int(fr), far) for fr in facts["host_syn_frames"]]
    if finding.code == "Q004":
        twins = _originals(analysis.captures[role].packets, set(finding.frames))
        out = [(r, fr, {**fa, "twin": twins[fr]} if fr in twins else fa) for r, fr, fa in out]
    if finding.code == "M005":
        for s in _ping_signals(analysis, finding):
            out = [(r, fr, {**fa, "size": s["size"], "target": s["target"]}) for r, fr, fa in out]
    return out


def _originals(packets: pd.DataFrame, copies: set[int]) -> dict[int, int]:
    """frame -> the first frame of the same packet (its TCP/IP identity) for these interface copies."""
    ident = [
        "src",
        "dst",
        "sport",
        "dport",
        *COPY_IDENTITY,
    ]  # the identity interface_copies() numbers copies by
    tcp = packets[packets["proto"] == 6]
    keys = tcp[tcp["frame"].isin(copies)][ident].drop_duplicates()
    same = tcp[["frame", *ident]].merge(keys, on=ident)
    first = same.groupby(ident, sort=False, observed=True)["frame"].transform("min")
    return {int(f): int(o) for f, o in zip(same["frame"], first, strict=True) if f in copies and o != f}


def _ping_signals(analysis: Analysis, finding) -> list[dict]:
    frames = set(finding.frames)
    return [
        s
        for p in analysis.context.path.values()
        for s in p.signals
        if s.get("capture") == finding.capture and set(s.get("frames", ())) == frames
    ][:1]


def _rows_of(analysis: Analysis, role: str, frames: set[int]) -> dict[int, dict]:
    """pcapmtu's packets rows (with its ICMP size-report rows merged in) for these frames."""
    cap = analysis.captures[role]
    p = cap.packets
    rows = {int(r["frame"]): r for r in p[p["frame"].isin(frames)].to_dict(orient="records")}
    icmp = cap.icmp[cap.icmp["frame"].isin(frames) & cap.icmp["kind"].isin(["frag_needed", "packet_too_big"])]
    for r in icmp.to_dict(orient="records"):
        rows.setdefault(int(r["frame"]), {}).update(
            {
                **{k: v for k, v in r.items() if k.startswith("quoted_")},
                "mtu": r["mtu"],
                "size_report": r["kind"],
            }
        )
    return rows


# Wireshark preferences the checks rely on, whatever the user's profile says
PREFS = {"tcp.analyze_sequence_numbers": "TRUE", "tcp.relative_sequence_numbers": "TRUE"}


def ask(path, frames: list[int], tshark: str, timeout: float = TSHARK_TIMEOUT) -> dict[int, WsFrame]:
    """One tshark run that dissects only these frames of the capture, read through pyshark's packet model.

    tshark runs as a plain child process and its PDML goes to pyshark's own parser: pyshark's FileCapture
    drives tshark through asyncio's child watchers, which on Python 3.11 can lose the exit status of tshark to
    another waiter and then report it as a crash (exit 255), and which need a thread of their own inside a
    running event loop (a notebook)."""
    from lxml import objectify  # pyshark's own XML library
    from pyshark.tshark.output_parser.tshark_xml import DEL_BAD_XML_CHARS, packet_from_xml_packet

    args = [tshark, "-n", "-r", str(path), "-Y", frames_filter(frames), "-T", "pdml"]
    for name, value in PREFS.items():
        args += ["-o", f"{name}:{value}"]
    try:
        done = subprocess.run(
            args, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise TsharkFailed(f"tshark took longer than {timeout:g} s") from exc
    if done.returncode != 0:
        said = [
            x for x in done.stderr.decode(errors="replace").splitlines() if x and "Running as user" not in x
        ]
        raise TsharkFailed(f"tshark exited with {done.returncode}" + (f": {said[-1]}" if said else ""))
    text = done.stdout.decode(errors="ignore").translate(DEL_BAD_XML_CHARS)
    if "<packet>" not in text:
        return {}
    parser = objectify.makeparser(huge_tree=True, recover=True, encoding="utf-8", resolve_entities=False)
    root = objectify.fromstring(text.encode(), parser)
    out = {}
    for element in root.iterchildren("packet"):
        frame = _read(packet_from_xml_packet(element))
        out[frame.number] = frame
    return out


class TsharkFailed(RuntimeError):
    """tshark did not answer for one capture (its exit status and last line, or the time limit)."""


def _ask_all(jobs: dict, tshark: str) -> dict:
    """role -> (WsFrames or the exception) for every (path, frames) job, one after the other."""
    out = {}
    for role, (path, frames) in jobs.items():
        try:
            out[role] = ask(path, frames, tshark)
        except Exception as exc:  # noqa: BLE001 - tshark failing on one capture must not hide the others
            out[role] = exc
    return out


def check(analysis: Analysis, max_frames: int = MAX_FRAMES, tshark: str | None = None) -> WiresharkCheck:
    """Ask Wireshark about every evidence frame of every finding of `analysis`, and compare."""
    tshark_path, why = tools(tshark)
    if not tshark_path:
        return _missing(why)
    start = time.perf_counter()
    subjects = [
        (f.code, role, frame, facts)
        for f in analysis.findings_list
        for role, frame, facts in _subjects(analysis, f)
    ]
    by_role: dict[str, list[int]] = {}
    for _code, role, frame, _facts in subjects:
        by_role.setdefault(role, []).append(frame)
    asked, notes, not_asked, jobs = {}, [], 0, {}
    for role, frames in by_role.items():
        unique = sorted(set(frames))
        asked[role] = set(unique[:max_frames])
        not_asked += len(unique) - len(asked[role])
        path = getattr(analysis.captures[role], "path", None)
        twins = {fa["twin"] for _c, r, fr, fa in subjects if r == role and fr in asked[role] and "twin" in fa}
        if path:
            jobs[role] = (path, sorted(asked[role] | twins))
        else:
            notes.append(f"the {role} capture was not read from a file: not asked")
            asked[role] = set()
    views = {}
    for role, answer in _ask_all(jobs, tshark_path).items():
        if isinstance(answer, Exception):
            notes.append(f"tshark could not read the {role} capture: {type(answer).__name__}: {answer}"[:300])
            asked[role] = set()
        else:
            views[role] = answer
    runs = len(jobs)
    ours = {role: _rows_of(analysis, role, set(frames)) for role, frames in by_role.items()}
    records = []
    for code, role, frame, facts in subjects:
        row = ours[role].get(frame, {})
        twin = views.get(role, {}).get(facts["twin"]) if "twin" in facts else None
        s = Subject(code, role, _kind(row), facts, row, twin)
        records.append(_judge(s, frame, views.get(role, {}).get(frame), frame in asked.get(role, ())))
    rows = pd.DataFrame(records, columns=COLUMNS)
    return WiresharkCheck(
        rows,
        tshark_runs=runs,
        frames_asked=sum(len(v) for v in asked.values()),
        not_asked=not_asked,
        max_frames=max_frames,
        seconds=time.perf_counter() - start,
        notes=notes,
    )


def _judge(s: Subject, frame: int, ws: WsFrame | None, was_asked: bool) -> dict:
    out = {
        "code": s.code,
        "capture": s.role,
        "frame": frame,
        "claim": "",
        "wireshark": "",
        "expert": "",
        "status": "",
        "why": "",
    }
    table = CLAIMS.get(s.code)
    if not was_asked:
        return {**out, "status": "not asked", "why": "over the frame cap, or the capture could not be read"}
    if ws is None:
        return {**out, "status": "disagree", "why": "Wireshark has no such frame in the capture"}
    out.update(wireshark=ws.summary(), expert="; ".join(ws.expert))
    if table is None:
        return {**out, "status": "unchecked", "why": f"no claim about frames is defined for {s.code}"}
    checks = table.get(s.kind)
    if checks is None:
        about = ", ".join(ABOUT[k] for k in table)
        return {
            **out,
            "claim": f"a {ABOUT[s.kind]}",
            "status": "disagree",
            "why": f"{s.code} is about {about}; pcapmtu's own decode says this is a {ABOUT[s.kind]}",
        }
    results = [r for c in (*checks, decoded_alike) if (r := c(ws, s)) is not None]
    bad = [r for r in results if not r.ok]
    out["claim"] = "; ".join(r.claim for r in results)
    out["status"] = "disagree" if bad else "agree"
    out["why"] = "; ".join(f"claims {r.claim}, Wireshark: {r.said}" for r in bad)
    return out
