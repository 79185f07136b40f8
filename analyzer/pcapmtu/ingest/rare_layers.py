"""Rare, rich layers: DNS messages, ICMP errors with their quoted headers, TLS handshakes.

These packets are few, so they are decoded one by one with dpkt (DNS, TLS hello bodies) or with
fixed-layout struct reads (ICMP quotes, which are routinely truncated and which dpkt rejects). DNS-heavy
captures are the exception: there the C core's `dns_rows` decodes the common message shapes, with exactly
dpkt's rows, and hands every other message back to dpkt (`native.ENABLED` switches it, as elsewhere), and
the DNS table waits in compact form (`DnsMessages`) until somebody reads it.
Everything taken from a capture is attacker-controlled: a message that fails to decode becomes a row
with status "malformed", never an exception.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
from dataclasses import dataclass
from operator import itemgetter

import dpkt
import numpy as np
import pandas as pd

from .. import schema
from . import native

DNS_TYPES = {1: "A", 28: "AAAA", 5: "CNAME"}
DNS_RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}

DNS_COLUMNS = [
    *("frame", "ts", "src", "dst", "sport", "dport"),  # from the packets table
    *("txid", "response", "rcode", "qname", "qtype", "answer_name", "answer_type", "answer", "ttl", "status"),
]
ICMP_COLUMNS = [
    *("frame", "ts", "src", "dst"),  # from the packets table
    *("ipv", "icmp_type", "icmp_code", "kind", "mtu"),
    *("quoted_src", "quoted_dst", "quoted_proto", "quoted_sport", "quoted_dport"),  # the quoted packet
    *("quoted_seq", "quoted_ip_len", "quoted_df", "quoted_l4_bytes"),
    "status",
]


def _rows_of(rare: list[tuple[int, bytes]]) -> np.ndarray:
    """The packet row of each rare payload."""
    return np.fromiter(map(itemgetter(0), rare), dtype=np.int64, count=len(rare))


# ------------------------------------------------------------------------------------------------- DNS
@dataclass(frozen=True, eq=False)
class DnsMessages:
    """A capture's UDP DNS messages with each distinct message decoded once: the DNS table before it is laid
    out one row per answer.

    Why not the table at once: on a DNS-heavy capture laying out the table takes longer than decoding, and
    `inspect`, `analyze` and `scan` need only the number of messages and the answers that name servers
    (`answers()`). `Capture.dns` makes the table (`table()`) the first time it is read.
    """

    frame: np.ndarray  # per message: the packet's frame, timestamp, ports
    ts_ns: np.ndarray
    sport: np.ndarray
    dport: np.ndarray
    src: np.ndarray  # per message: its addresses as codes into the names below (-1: none)
    dst: np.ndarray
    src_names: np.ndarray  # the text of the addresses the messages use, by code, then NaN (picked by -1)
    dst_names: np.ndarray
    txid: np.ndarray  # per message: its transaction id, -1 under 2 bytes
    kind: np.ndarray  # per message: its distinct message
    per_kind: np.ndarray  # per distinct message: how many rows it has
    columns: list  # the distinct messages' rows, column by column: _dns_rows' ten fields

    @property
    def messages(self) -> int:
        """DNS messages, counted as the table's distinct frames."""
        return len(pd.unique(self.frame))  # (numpy 2.4's np.unique takes ten times as long)

    def table(self) -> pd.DataFrame:
        """The DNS table (schema.DNS): one row per A/AAAA/CNAME answer, or one per message without any."""
        if not len(self.frame):
            return schema.typed(schema.empty(schema.DNS), schema.DNS)
        message, pick = self._layout(None)
        parsed = np.asarray(self.columns[0], dtype=np.int64)[pick] >= 0  # txid -1: the message did not parse
        ts_ns = self.ts_ns[message]
        table = {
            "frame": self.frame[message],
            "ts": ts_ns / 1e9,
            "time": schema.utc(ts_ns),
            "src": self.src_names[self.src[message]],
            "dst": self.dst_names[self.dst[message]],
            "sport": self.sport[message],
            "dport": self.dport[message],
            "txid": np.where(parsed, self.txid[message], -1),
        }
        for name, values in zip(DNS_COLUMNS[7:], self.columns[1:], strict=True):
            if name in ("response", "ttl"):
                table[name] = np.asarray(values)[pick]
            else:  # text stays Python str objects, as the schema keeps it: no round trip through Arrow strings
                table[name] = pd.Series(np.asarray(values, dtype=object)[pick], dtype=object, copy=False)
        return schema.typed(pd.DataFrame(table), schema.DNS)

    def answers(self) -> pd.DataFrame:
        """The A and AAAA answers of responses, in the table's order: `ts`, `answer` (the address), `qname`."""
        response = np.asarray(self._rows_column("response"), dtype=bool)
        wanted = response & pd.Series(self._rows_column("answer_type"), dtype=object).isin(["A", "AAAA"])
        message, pick = self._layout(np.flatnonzero(wanted.to_numpy()))
        return pd.DataFrame(
            {
                "ts": self.ts_ns[message] / 1e9,
                "answer": np.asarray(self._rows_column("answer"), dtype=object)[pick],
                "qname": np.asarray(self._rows_column("qname"), dtype=object)[pick],
            }
        )

    def _rows_column(self, name: str):
        """A column of the distinct messages' rows, by its name in the DNS table (txid first, as DNS_COLUMNS)."""
        return self.columns[DNS_COLUMNS.index(name) - DNS_COLUMNS.index("txid")]

    def _layout(self, chosen: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """Per output row, its message and its row among the distinct messages' rows: every message with
        all its rows, or with those of its rows among `chosen` (ascending positions of distinct rows)."""
        per_kind = self.per_kind
        if chosen is not None:
            kind_of_row = np.repeat(np.arange(len(per_kind)), per_kind)
            per_kind = np.bincount(kind_of_row[chosen], minlength=len(per_kind))
        kind_start = np.cumsum(per_kind) - per_kind
        counts = per_kind[self.kind]
        message = np.repeat(np.arange(len(self.kind)), counts)
        within = np.arange(len(message)) - np.repeat(np.cumsum(counts) - counts, counts)
        pick = kind_start[self.kind][message] + within  # its row among the (chosen) distinct rows
        return message, pick if chosen is None else chosen[pick]


def dns_messages(packets: pd.DataFrame, rare: list[tuple[int, bytes]]) -> DnsMessages:
    """The UDP DNS messages among the rare payloads, each distinct one decoded once."""
    proto = packets["proto"].to_numpy()
    rows = _rows_of(rare)
    is_udp = proto[rows] == 17 if len(rows) else np.zeros(0, dtype=bool)
    # Real traffic repeats the same questions and answers; a message's rows depend only on its bytes
    # after the 2-byte transaction id, so each distinct message is parsed once (dpkt is ~90 us/message,
    # the C core's dns_rows ~1 us for the common shapes).
    if is_udp.any():
        native_core = native.entry("dns_columns") is not None
        message_rows, txid, kinds, first = (_dns_index_c if native_core else _dns_index)(rare, rows, is_udp)
        per_kind, columns = (_dns_columns_c if native_core else _dns_columns)(rare, first)
    else:
        message_rows = txid = kinds = per_kind = np.zeros(0, dtype=np.int64)
        columns = [()] * 10
    src, src_names = _used_addresses(packets["src"], message_rows)
    dst, dst_names = _used_addresses(packets["dst"], message_rows)
    return DnsMessages(
        frame=packets["frame"].to_numpy()[message_rows].astype(np.int64),
        ts_ns=packets["ts_ns"].to_numpy()[message_rows],
        sport=packets["sport"].to_numpy()[message_rows].astype(np.int32),
        dport=packets["dport"].to_numpy()[message_rows].astype(np.int32),
        src=src,
        dst=dst,
        src_names=src_names,
        dst_names=dst_names,
        txid=txid,
        kind=kinds,
        per_kind=per_kind,
        columns=columns,
    )


def _used_addresses(column: pd.Series, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The addresses of `rows` of a categorical column as (codes, text by code then NaN; -1 picks NaN), with
    the text of only the addresses they use: the messages are kept, and a capture may hold a million others."""
    used = pd.Categorical.from_codes(column.cat.codes.to_numpy()[rows], dtype=column.dtype)
    used = used.remove_unused_categories()
    return used.codes, np.append(used.categories.to_numpy(dtype=object), np.nan)


def dns_table(packets: pd.DataFrame, rare: list[tuple[int, bytes]]) -> pd.DataFrame:
    """The DNS table at once (schema.DNS): one row per A/AAAA/CNAME answer, or one per message without any."""
    return dns_messages(packets, rare).table()


def _dns_index(
    rare: list[tuple[int, bytes]], rows: np.ndarray, is_udp: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The UDP DNS messages (after the 8-byte UDP header) among the rare payloads: per message its row, its
    transaction id (-1 under 2 bytes) and its kind, numbered by first sight over its bytes after the
    transaction id; per kind, the position in `rare` of its first message."""
    messages = [data[8:] for (_, data), udp in zip(rare, is_udp.tolist(), strict=True) if udp]
    kinds, _ = pd.factorize(np.array([m[2:] for m in messages], dtype=object))  # numbered by first sight
    _, first = np.unique(kinds, return_index=True)  # the first message of each kind
    txid = np.array([int.from_bytes(m[:2], "big") if len(m) >= 2 else -1 for m in messages], dtype=np.int64)
    return rows[is_udp], txid, kinds.astype(np.int64), np.flatnonzero(is_udp)[first]


def _dns_index_c(
    rare: list[tuple[int, bytes]], rows: np.ndarray, is_udp: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """_dns_index in the C core: one pass, no bytes object made per message."""
    parts = native.core.dns_index(rare, is_udp.astype(np.uint8).tobytes())
    return tuple(np.frombuffer(part, dtype=np.int64) for part in parts)


def _dns_columns(rare: list[tuple[int, bytes]], first: np.ndarray) -> tuple[np.ndarray, list]:
    """The rows of the distinct messages (at positions `first` of `rare`), in turn: rows per message and the
    ten columns of _dns_rows' tuples."""
    distinct = [_dns_rows(rare[at][1][8:]) for at in first.tolist()]
    per_kind = np.array([len(kind_rows) for kind_rows in distinct], dtype=np.int64)
    flat = [r for kind_rows in distinct for r in kind_rows]
    return per_kind, list(zip(*flat, strict=True)) if flat else [()] * 10


def _dns_columns_c(rare: list[tuple[int, bytes]], first: np.ndarray) -> tuple[np.ndarray, list]:
    """_dns_columns in the C core: dns_rows per message, _dns_rows (dpkt) for those it hands back."""
    per_kind, txid, response, ttl, *text = native.core.dns_columns(
        rare, first.astype(np.int64).tobytes(), _dns_rows
    )
    rcode, qname, qtype, answer_name, answer_type, answer, status = text
    return np.frombuffer(per_kind, dtype=np.int64), [
        np.frombuffer(txid, dtype=np.int64),
        np.frombuffer(response, dtype=np.bool_),
        rcode,
        qname,
        qtype,
        answer_name,
        answer_type,
        answer,
        np.frombuffer(ttl, dtype=np.int64),
        status,
    ]


def _dns_rows(payload: bytes) -> list[tuple]:
    """Rows of one DNS message without the frame: (txid, response, rcode, qname, qtype, answer...)."""
    try:
        msg = dpkt.dns.DNS(payload)
    except Exception:  # noqa: BLE001 - dpkt raises many types on hostile input
        return [(-1, False, "", "", "", "", "", "", -1, "malformed")]
    response = bool(msg.qr)
    rcode = DNS_RCODES.get(msg.rcode, str(msg.rcode))
    q = msg.qd[0] if msg.qd else None
    qname = q.name if q is not None else ""
    qtype = DNS_TYPES.get(q.type, str(q.type)) if q is not None else ""
    out = []
    for rr in msg.an if response else ():
        kind = DNS_TYPES.get(rr.type)
        if kind is None:
            continue
        try:
            if kind == "A":
                value = socket.inet_ntop(socket.AF_INET, rr.rdata)
            elif kind == "AAAA":
                value = socket.inet_ntop(socket.AF_INET6, rr.rdata)
            else:
                value = rr.cname
        except (ValueError, OSError, AttributeError):
            continue
        out.append((msg.id, response, rcode, qname, qtype, rr.name, kind, value, rr.ttl, "ok"))
    if not out:
        out.append((msg.id, response, rcode, qname, qtype, "", "", "", -1, "ok"))
    return out


# ------------------------------------------------------------------------------------------------ ICMP
def icmp_table(packets: pd.DataFrame, rare: list[tuple[int, bytes]]) -> pd.DataFrame:
    """ICMP errors that quote a packet, with the next-hop MTU and the quoted 5-tuple (RFC 792/1191/4443)."""
    proto = packets["proto"].to_numpy()
    # the ICMP payloads among the rare ones (mostly DNS, hundreds of thousands on a busy node), found at once
    icmp = np.flatnonzero(np.isin(proto[_rows_of(rare)], (1, 58))).tolist() if rare else []
    records = [_icmp_row(row, data, int(proto[row])) for row, data in map(rare.__getitem__, icmp)]
    table = pd.DataFrame.from_records(records, columns=["row", *ICMP_COLUMNS[4:]])
    return _with_packet_columns(packets, table, ICMP_COLUMNS)


def _icmp_row(row: int, data: bytes, proto: int) -> tuple:
    data = data.ljust(4, b"\x00")  # decode guarantees 4 bytes; stay safe if a caller does not
    typ, code = data[0], data[1]
    ipv = 4 if proto == 1 else 6
    mtu = -1
    if ipv == 4:
        kind = {3: "unreachable", 4: "source_quench", 11: "time_exceeded", 12: "parameter_problem"}.get(
            typ, "other"
        )
        if typ == 3 and code == 4:
            kind = "frag_needed"
            mtu = struct.unpack_from(">H", data, 6)[0] if len(data) >= 8 else -1  # RFC 1191
    else:
        kind = {1: "unreachable", 2: "packet_too_big", 3: "time_exceeded", 4: "parameter_problem"}.get(
            typ, "other"
        )
        if typ == 2 and len(data) >= 8:
            mtu = struct.unpack_from(">I", data, 4)[0]  # RFC 4443 3.2
    quoted = _quoted_header(data[8:])
    status = "ok" if quoted[0] else "truncated-quote"
    return (row, ipv, typ, code, kind, mtu, *quoted, status)


def _quoted_header(q: bytes) -> tuple:
    """(src, dst, proto, sport, dport, seq, ip_len, df, l4_bytes) of the packet an ICMP error quotes."""
    empty = ("", "", -1, -1, -1, -1, -1, False, 0)
    if len(q) >= 20 and q[0] >> 4 == 4:
        ihl = (q[0] & 0x0F) * 4
        total, flags = struct.unpack_from(">H", q, 2)[0], struct.unpack_from(">H", q, 6)[0]
        src, dst = str(ipaddress.IPv4Address(q[12:16])), str(ipaddress.IPv4Address(q[16:20]))
        proto, l4 = q[9], q[ihl:] if ihl >= 20 else b""
        df = bool(flags & 0x4000)
    elif len(q) >= 40 and q[0] >> 4 == 6:
        total = struct.unpack_from(">H", q, 4)[0] + 40
        src, dst = str(ipaddress.IPv6Address(q[8:24])), str(ipaddress.IPv6Address(q[24:40]))
        proto, l4, df = q[6], q[40:], True  # IPv6 routers never fragment
    else:
        return empty
    sport = dport = seq = -1
    if proto in (6, 17) and len(l4) >= 4:
        sport, dport = struct.unpack_from(">HH", l4, 0)
    if proto == 6 and len(l4) >= 8:
        seq = struct.unpack_from(">I", l4, 4)[0]
    return (src, dst, proto, sport, dport, seq, total, df, len(l4))


def _addresses(column: pd.Series, rows: np.ndarray) -> np.ndarray:
    """Address text of a few rows of a categorical column (NaN where a packet has none)."""
    codes, names = _used_addresses(column, rows)
    return names[codes]


def _with_packet_columns(packets: pd.DataFrame, table: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    rows = table["row"].to_numpy(dtype=np.int64)
    table.insert(0, "frame", packets["frame"].to_numpy()[rows].astype(np.int64))
    ts_ns = packets["ts_ns"].to_numpy()[rows]
    table.insert(1, "ts", ts_ns / 1e9)
    table.insert(2, "time", schema.utc(ts_ns))
    table.insert(3, "src", _addresses(packets["src"], rows))
    table.insert(4, "dst", _addresses(packets["dst"], rows))
    return table.drop(columns="row")[[*columns[:2], "time", *columns[2:]]].reset_index(drop=True)


# ------------------------------------------------------------------------------------------------- TLS
TLS_LIMIT = 32 * 1024  # bytes of each direction reassembled: enough for hellos and a certificate chain
TLS_VERSIONS = {0x0300: "SSL3", 0x0301: "TLS1.0", 0x0302: "TLS1.1", 0x0303: "TLS1.2", 0x0304: "TLS1.3"}
TLS_COLUMNS = [
    "conn",
    "sni",
    "tls_version",
    "client_hello_len",
    "server_hello",
    "certificate_len",
    "server_flight_bytes",
    "client_second_flight",
]


def tls_table(packets: pd.DataFrame, read_payloads) -> pd.DataFrame:
    """Per TLS connection: SNI, version, hello/certificate sizes, whether the handshake went on.

    `read_payloads(rows)` returns the captured TCP payload bytes of those packet rows (re-read from the
    file: only the first TLS_LIMIT bytes of candidate connections are ever looked at).
    """
    conn = packets["conn"].to_numpy()
    rel = packets["rel_seq"].to_numpy()
    dirn = packets["dir"].to_numpy()
    plen = packets["payload_len"].to_numpy()
    first_byte = packets["payload0"].to_numpy()
    data = (conn >= 0) & (plen > 0) & (rel >= 1) & (rel < TLS_LIMIT)
    starts = data & (rel == 1) & (dirn == 0) & (first_byte == 0x16)
    candidates = np.unique(conn[starts])
    if not len(candidates):
        return pd.DataFrame(columns=TLS_COLUMNS)
    pick = np.flatnonzero(data & np.isin(conn, candidates))
    payloads = read_payloads(pick)
    seg = pd.DataFrame({"row": pick, "conn": conn[pick], "dir": dirn[pick], "rel": rel[pick]})
    seg["bytes"] = payloads
    records = []
    for cid, group in seg.groupby("conn", sort=True):
        streams = [reassemble(group[group["dir"] == d]) for d in (0, 1)]
        records.append((int(cid), *_tls_facts(*streams)))
    return pd.DataFrame.from_records(records, columns=TLS_COLUMNS)


def reassemble(segs: pd.DataFrame, start: int = 1) -> bytes:
    """Contiguous stream bytes from relative sequence `start` until the first gap (first copy wins).

    `segs` has the columns rel (relative sequence of the first byte) and bytes (what was captured of the
    payload: a segment cut by the snap length ends the contiguous part there)."""
    out = bytearray()
    for rel, chunk in sorted(zip(segs["rel"].tolist(), segs["bytes"].tolist(), strict=True)):
        have = start + len(out)
        if rel > have:
            break
        skip = have - rel
        if skip < len(chunk):
            out += chunk[skip:]
    return bytes(out)


def _handshake_messages(stream: bytes) -> tuple[list[tuple[int, bytes, int]], int, list[int]]:
    """Walk TLS records: handshake messages (type, body, declared length), bytes used, record types."""
    hs = bytearray()
    types: list[int] = []
    off = 0
    while off + 5 <= len(stream):
        rtype, _ver, rlen = struct.unpack_from(">BHH", stream, off)
        if rtype not in (20, 21, 22, 23) or rlen > 18432:
            break
        types.append(rtype)
        if rtype == 22:
            hs += stream[off + 5 : off + 5 + rlen]
        off += 5 + rlen
    msgs = []
    pos = 0
    while pos + 4 <= len(hs):
        mtype = hs[pos]
        mlen = int.from_bytes(hs[pos + 1 : pos + 4], "big")
        msgs.append((mtype, bytes(hs[pos : pos + 4 + mlen]), mlen))
        pos += 4 + mlen
    return msgs, min(off, len(stream)), types


def _tls_facts(client: bytes, server: bytes) -> tuple:
    sni, version, ch_len = "", "", -1
    c_msgs, _, c_types = _handshake_messages(client)
    for mtype, body, mlen in c_msgs:
        if mtype == 1:
            ch_len = mlen
            sni = _client_hello_sni(body)
            break
    s_msgs, s_used, _ = _handshake_messages(server)
    server_hello = False
    cert_len = -1
    for mtype, body, mlen in s_msgs:
        if mtype == 2:
            server_hello = True
            version = _server_hello_version(body)
        elif mtype == 11:
            cert_len = mlen
    client_second = len(c_types) > 1 or len(c_msgs) > 1
    return sni, version, ch_len, server_hello, cert_len, len(server), client_second


def _client_hello_sni(body: bytes) -> str:
    try:
        hello = dpkt.ssl.TLSHandshake(body).data
        for ext_type, ext_data in getattr(hello, "extensions", []):
            if ext_type == 0 and len(ext_data) >= 5:
                name_len = struct.unpack_from(">H", ext_data, 3)[0]
                return ext_data[5 : 5 + name_len].decode("ascii", "replace")
    except Exception:  # noqa: BLE001 - hostile or truncated hello
        return ""
    return ""


def _server_hello_version(body: bytes) -> str:
    try:
        hello = dpkt.ssl.TLSHandshake(body).data
        version = hello.version
        for ext_type, ext_data in getattr(hello, "extensions", []):
            if ext_type == 43 and len(ext_data) >= 2:  # supported_versions (RFC 8446 4.2.1)
                version = struct.unpack_from(">H", ext_data, 0)[0]
        return TLS_VERSIONS.get(version, hex(version))
    except Exception:  # noqa: BLE001
        return ""
