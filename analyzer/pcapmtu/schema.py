"""The documented columns of every table (name -> (dtype, meaning)). docs/tables.md is generated from here.

Run `python -m pcapmtu.schema > docs/tables.md` after a change; tests/test_schema.py checks that the
tables really have these columns and that the doc is current. c2s = client to server, s2c = the reverse.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from pandas.api.types import infer_dtype

# The per-segment TCP analysis flags (tcp/segments.py sets them per packet; the flows table counts them
# per direction)
PER_SEGMENT_FLAGS = (
    "retrans",
    "fast_retrans",
    "spurious_retrans",
    "out_of_order",
    "lost_before",
    "dup_ack",
    "zero_window",
    "keepalive",
)

UTC = "datetime64[ns, UTC]"  # the dtype of the `time` columns: tz-aware, beside the epoch seconds they repeat


def utc(ns) -> pd.DatetimeIndex:
    """Nanoseconds since the epoch (int64) as tz-aware UTC datetimes, exact to the nanosecond."""
    return pd.DatetimeIndex(np.asarray(ns, dtype=np.int64).view("M8[ns]")).tz_localize("UTC")


PACKETS = {
    "frame": ("int64", "1-based position in the file, as Wireshark numbers frames"),
    "ts_ns": ("int64", "capture timestamp, nanoseconds since the epoch"),
    "ts": ("float64", "capture timestamp, seconds since the epoch"),
    "time": (UTC, "capture timestamp as a UTC datetime (`ts_ns` exactly)"),
    "caplen": ("uint32", "bytes captured"),
    "wirelen": ("uint32", "bytes on the wire (original length)"),
    "truncated": ("bool", "caplen < wirelen (snaplen cut it); never counted as lost data"),
    "iface": ("uint16", "pcapng interface index (0 for pcap)"),
    "file_off": ("int64", "offset of the packet bytes in the (decompressed) file"),
    "linktype": ("uint16", "link-layer type of the interface (1 Ethernet, 113 SLL, 276 SLL2, ...)"),
    "ifindex": ("int32", "Linux interface index from an SLL2 header (`tcpdump -i any`), else -1"),
    "pkttype": ("int8", "SLL/SLL2 packet type (0 to us, 4 outgoing, ...), else -1"),
    "encap": (
        "category",
        "overlay the packet was carried in: vxlan, geneve, gre, ipip, teredo, l2tp or empty",
    ),
    "outer_ip_len": ("uint32", "IP total length of the outer (overlay) packet, 0 when not encapsulated"),
    "ipv": ("uint8", "IP version of the (inner) packet: 4, 6, or 0 for non-IP"),
    "src": ("category", "source address"),
    "dst": ("category", "destination address"),
    "ip_len": ("uint32", "IP total length (IPv6: payload length + 40)"),
    "ip_id": ("uint32", "IPv4 identification, IPv6 fragment identification"),
    "df": ("bool", "IPv4 don't-fragment flag"),
    "frag": ("bool", "a real fragment (not an atomic fragment)"),
    "frag_off": ("uint16", "fragment offset in bytes"),
    "ttl": ("uint8", "IPv4 TTL / IPv6 hop limit"),
    "proto": ("uint8", "transport protocol number (6 TCP, 17 UDP, 1 ICMP, 58 ICMPv6)"),
    "sport": ("uint16", "source port"),
    "dport": ("uint16", "destination port"),
    "tcp_flags": ("uint16", "TCP flags (FIN 1, SYN 2, RST 4, PSH 8, ACK 16, ...)"),
    "seq": ("uint32", "raw TCP sequence number"),
    "ack": ("uint32", "raw TCP acknowledgment number"),
    "win": ("uint16", "raw (unscaled) TCP window"),
    "tcp_hdr_len": ("uint8", "TCP header length in bytes"),
    "payload_len": ("int32", "transport payload length from the IP header (not from caplen)"),
    "payload0": ("int16", "first payload byte if captured, else -1 (0x16 = TLS handshake)"),
    "payload_off": ("uint16", "offset of the TCP payload from the start of the packet"),
    "mss": ("uint16", "TCP MSS option value, 0 when absent"),
    "wscale": ("int8", "TCP window scale option, -1 when absent"),
    "sack_perm": ("bool", "SACK-permitted option present"),
    "sack_blocks": ("uint8", "number of SACK blocks (the blocks are in the `sack` table)"),
    "tsval": ("uint32", "TCP timestamp value"),
    "tsecr": ("uint32", "TCP timestamp echo reply"),
    "has_ts": ("bool", "TCP timestamp option present"),
    "icmp_type": ("int16", "ICMP/ICMPv6 type, -1 otherwise"),
    "icmp_code": ("int16", "ICMP/ICMPv6 code, -1 otherwise"),
    "status": ("category", "ok, or the first decoding problem (ip-truncated, tcp-bad-header-length, ...)"),
    "conn": ("int32", "TCP connection id (the `flows` row), -1 for other packets"),
    "dir": ("int8", "0 client to server, 1 server to client, -1 not TCP"),
    "rel_seq": ("int64", "sequence number relative to the direction's ISN, unwrapped past 2^32"),
    "rel_ack": ("int64", "acknowledgment number relative to the other direction's ISN"),
    "retrans": ("bool", "retransmission (tshark tcp.analysis.retransmission; includes fast and spurious)"),
    "fast_retrans": ("bool", "fast retransmission (after >= 2 duplicate ACKs, within 20 ms)"),
    "spurious_retrans": ("bool", "retransmission of data the receiver had already acknowledged"),
    "out_of_order": (
        "bool",
        "arrived behind later data within the handshake RTT (tcp.analysis.out_of_order)",
    ),
    "lost_before": ("bool", "data before this segment was not captured (tcp.analysis.lost_segment)"),
    "dup_ack": ("bool", "duplicate ACK (tcp.analysis.duplicate_ack)"),
    "zero_window": ("bool", "advertises a zero window"),
    "keepalive": ("bool", "TCP keep-alive"),
    "dup_copy": ("bool", "the same packet already seen on another interface (-i any); not analysed again"),
    "sack_hole": ("int64", "bytes between the cumulative ACK and the lowest SACK block above it"),
}

FLOWS = {
    "conn": ("int64", "connection id, numbered by first frame"),
    "tcp_stream": (
        "int64",
        "Wireshark's tcp.stream of the connection (differs from conn after ICMP-quoted TCP)",
    ),
    "client_ip": ("str", "client address (sender of the SYN; see docs/tables.md for the fallback)"),
    "client_port": ("int32", "client port"),
    "server_ip": ("str", "server address"),
    "server_port": ("int32", "server port"),
    "ipv": ("int8", "IP version"),
    "first_frame": ("int64", "first frame of the connection"),
    "last_frame": ("int64", "last frame"),
    "first_ts": ("float64", "earliest timestamp (epoch seconds)"),
    "first_time": (UTC, "earliest timestamp as a UTC datetime (to the nanosecond)"),
    "last_ts": ("float64", "latest timestamp"),
    "last_time": (UTC, "latest timestamp as a UTC datetime"),
    "syn_frame": ("int64", "frame of the client's SYN, -1 if not captured"),
    "synack_frame": ("int64", "frame of the server's SYN-ACK, -1 if not captured"),
    "handshake_rtt": (
        "float64",
        "latest SYN to the first later segment with ACK and without SYN, seconds (Wireshark's iRTT); NaN without one",
    ),
    "mss_client": ("int32", "MSS the client advertised in its SYN (0 = none seen)"),
    "mss_server": ("int32", "MSS the server advertised in its SYN-ACK"),
    "wscale_client": ("int8", "window scale in the SYN, -1 none"),
    "wscale_server": ("int8", "window scale in the SYN-ACK, -1 none"),
    "sack_perm_client": ("bool", "SACK permitted by the client"),
    "sack_perm_server": ("bool", "SACK permitted by the server"),
    "ts_client": ("bool", "timestamps offered by the client"),
    "ts_server": ("bool", "timestamps offered by the server"),
}
for _d, _who in (("c2s", "client to server"), ("s2c", "server to client")):
    FLOWS.update(
        {
            f"pkts_{_d}": ("int64", f"packets {_who}"),
            f"bytes_{_d}": ("int64", f"payload bytes {_who} (retransmissions included)"),
            f"max_payload_{_d}": ("int64", f"largest TCP payload {_who}"),
            f"max_ip_len_{_d}": ("int64", f"largest IP total length {_who}"),
            f"max_outer_len_{_d}": ("int64", f"largest outer (overlay) IP length {_who}, 0 if none"),
        }
    )
for _flag in PER_SEGMENT_FLAGS:
    for _d in ("c2s", "s2c"):
        FLOWS[f"{_flag}_{_d}"] = ("int64", f"packets flagged `{_flag}` ({_d})")
FLOWS.update(
    {
        "retransmissions": ("int64", "retrans_c2s + retrans_s2c"),
        "sack_acks_c2s": ("int64", "client ACKs that report a SACK hole"),
        "max_sack_hole_c2s": ("int64", "largest hole the client's SACKs report, bytes"),
        "sack_acks_s2c": ("int64", "server ACKs that report a SACK hole"),
        "max_sack_hole_s2c": ("int64", "largest hole the server's SACKs report, bytes"),
        "state": (
            "category",
            "closed (both FINs), closing (one side's FIN), reset, refused, no_answer or open (still open or "
            "timed out); derived from conn_state",
        ),
        "conn_state": (
            "str",
            "Zeek conn_state: S0, S1, SF, REJ, S2, S3, RSTO, RSTR, RSTOS0, RSTRH, SH, SHR, OTH",
        ),
        "midstream": ("bool", "neither SYN nor SYN-ACK captured"),
        "history": (
            "str",
            "Zeek-like history: S syn, H syn-ack, A ack, D data, F fin, R rst, T retransmission, "
            "W zero window, G gap; upper case = client",
        ),
        "duration": ("float64", "last_ts - first_ts, seconds"),
        "isn_client": ("int64", "raw initial sequence number of the client (its SYN), -1 if not seen"),
        "isn_server": ("int64", "raw initial sequence number of the server (its SYN-ACK), -1 if not seen"),
        "first_seq_c2s": ("int64", "raw sequence number of the first client packet seen"),
        "first_seq_s2c": ("int64", "raw sequence number of the first server packet seen"),
        "first_data_ts_c2s": ("float64", "time of the first client payload (-1e-9 when none)"),
        "last_data_ts_c2s": ("float64", "time of the last client payload (-1e-9 when none)"),
        "first_data_ts_s2c": ("float64", "time of the first server payload (-1e-9 when none)"),
        "last_data_ts_s2c": ("float64", "time of the last server payload (-1e-9 when none)"),
        "max_idle": ("float64", "longest silence between two packets of the connection, seconds"),
        "idle_start_ts": ("float64", "when that silence began"),
        "bytes_s2c_after_idle": ("int64", "server payload bytes after the longest silence"),
        "max_payload_s2c_after_idle": ("int64", "largest server payload after the longest silence"),
        "max_payload_s2c_before_idle": ("int64", "largest server payload before it"),
        "bytes_c2s_after_idle": ("int64", "client payload bytes after the longest silence"),
        "max_payload_c2s_after_idle": ("int64", "largest client payload after the longest silence"),
        "max_payload_c2s_before_idle": ("int64", "largest client payload before it"),
        "sent_c2s": ("int64", "highest relative sequence end of the client's data"),
        "acked_c2s": ("int64", "highest client byte the server acknowledged"),
        "sent_s2c": ("int64", "highest relative sequence end of the server's data"),
        "acked_s2c": ("int64", "highest server byte the client acknowledged"),
        "fin_client": ("bool", "the client sent a FIN"),
        "fin_server": ("bool", "the server sent a FIN"),
        "closed_by": ("str", "client or server: who sent the first FIN or RST; empty if nobody"),
        "sni": ("str", "TLS ClientHello server name, empty if none"),
        "tls_version": ("str", "version the ServerHello chose (TLS1.3 via supported_versions)"),
        "client_hello_len": ("float64", "ClientHello length in bytes"),
        "server_hello": ("bool", "a ServerHello was captured"),
        "certificate_len": ("float64", "Certificate message length (TLS <= 1.2; encrypted in 1.3)"),
        "server_flight_bytes": ("float64", "contiguous server bytes captured from the start of the stream"),
        "client_second_flight": (
            "bool",
            "the client sent anything after its ClientHello (handshake went on)",
        ),
        "http_status": (
            "int64",
            "status code of the last HTTP/1.x response of a connection the server had not closed; -1 if none",
        ),
        "http_response_end": (
            "int64",
            "relative sequence number just past that response's body, by its Content-Length or chunk sizes "
            "(a lower bound while a chunked body's last chunk is missing); -1 when its framing cannot tell",
        ),
        "name": ("str", "service name: DNS query name that resolved to server_ip, else the SNI"),
        "name_source": ("str", "dns, sni or empty"),
    }
)

DNS = {
    "frame": ("int64", "frame of the DNS message"),
    "ts": ("float64", "timestamp"),
    "time": (UTC, "timestamp as a UTC datetime"),
    "src": ("object", "sender address"),
    "dst": ("object", "receiver address"),
    "sport": ("int32", "UDP source port"),
    "dport": ("int32", "UDP destination port"),
    "txid": ("int64", "DNS transaction id, -1 when malformed"),
    "response": ("bool", "a response (QR bit)"),
    "rcode": ("str", "NOERROR, NXDOMAIN, SERVFAIL, ..."),
    "qname": ("str", "question name"),
    "qtype": ("str", "question type (A, AAAA, ...)"),
    "answer_name": ("str", "owner name of the answer record"),
    "answer_type": ("str", "A, AAAA or CNAME (one row per answer)"),
    "answer": ("str", "address or CNAME target"),
    "ttl": ("int64", "answer TTL, -1 when no answer"),
    "status": ("str", "ok or malformed"),
}

ICMP = {
    "frame": ("int64", "frame of the ICMP error"),
    "ts": ("float64", "timestamp"),
    "time": (UTC, "timestamp as a UTC datetime"),
    "src": ("object", "sender (the router that reports)"),
    "dst": ("object", "receiver (the sender of the quoted packet)"),
    "ipv": ("int64", "4 for ICMP, 6 for ICMPv6"),
    "icmp_type": ("int64", "type"),
    "icmp_code": ("int64", "code"),
    "kind": (
        "str",
        "frag_needed, packet_too_big, unreachable, time_exceeded, source_quench, parameter_problem",
    ),
    "mtu": ("int64", "next-hop MTU (RFC 1191 / RFC 4443), -1 if none"),
    "quoted_src": ("str", "source of the quoted packet"),
    "quoted_dst": ("str", "destination of the quoted packet"),
    "quoted_proto": ("int64", "protocol of the quoted packet"),
    "quoted_sport": ("int64", "quoted source port"),
    "quoted_dport": ("int64", "quoted destination port"),
    "quoted_seq": ("int64", "quoted TCP sequence number (links the error to its connection)"),
    "quoted_ip_len": ("int64", "IP length of the packet that did not fit"),
    "quoted_df": ("bool", "quoted packet had DF set"),
    "quoted_l4_bytes": ("int64", "bytes of the quoted packet's transport header (and data) in the quote"),
    "status": ("str", "ok or truncated-quote"),
}

TABLES = {"packets": PACKETS, "flows": FLOWS, "dns": DNS, "icmp": ICMP}


def empty(table: dict) -> pd.DataFrame:
    """A zero-row frame with every documented column."""
    return pd.DataFrame(
        {name: pd.Series(dtype="object" if dt == "str" else dt) for name, (dt, _) in table.items()}
    )


def typed(frame: pd.DataFrame, table: dict) -> pd.DataFrame:
    """Give every documented column its documented dtype (missing text -> "", missing flags -> False)."""
    for name, (dt, _text) in table.items():
        if name not in frame.columns or dt == "category":
            continue
        col = frame[name]
        if dt not in ("str", "object") and col.dtype == dt:  # numbers and flags cannot hold a gap
            continue
        if dt in ("str", "object") and col.dtype == object and infer_dtype(col, skipna=False) == "string":
            continue  # text already, without a gap (one C pass, where the conversion below takes three)
        if dt in ("str", "object"):
            frame[name] = col.where(col.notna(), "").astype(str).astype(object)
        elif dt == "bool":
            frame[name] = col.where(col.notna(), False).astype(bool)
        elif dt.startswith(("int", "uint")):
            frame[name] = col.fillna(-1).astype(dt)
        else:
            frame[name] = col.astype(dt)
    return frame


TIMES_TEXT = """\
## Times

A time a person reads is there twice: as epoch seconds (`ts`, `first_ts`, `last_ts`, floats; packets also have
the exact integer `ts_ns`) for arithmetic, and right beside it as a tz-aware UTC datetime (`time`, `first_time`,
`last_time`, dtype `datetime64[ns, UTC]`) for reading, sorting and joining with logs. The datetimes come from the
integer nanoseconds, so they are exact even for nanosecond captures; for local time use
`flows["first_time"].dt.tz_convert("Europe/Berlin")`. `Analysis.findings` has a `time` column as well: when
the first frame a finding cites was captured (NaT when it cites none). The other times of `flows`
(`first_data_ts_*`, `last_data_ts_*`, `idle_start_ts`) stay epoch seconds only;
`pd.to_datetime(flows["idle_start_ts"], unit="s", utc=True)` converts one. In the Parquet export the datetimes
are microseconds, UTC (DuckDB reads them as `TIMESTAMP WITH TIME ZONE`); see [export.md](export.md).

`packets.time` costs 8 bytes per packet. Measured on a 300,000-packet capture (277 MB of real traffic, see
`benchmarks/`): building it takes 2 to 3 ms of a 0.5 s `pcapmtu.read()` (under 1 %; the read's CPU time with and
without it was the same within the noise of interleaved runs), and the read's peak RSS grows by 1.8 to 3.7 MiB of
237 MiB (0.8 to 1.6 %, medians of three interleaved series). That is below the 3 % of read time or memory above
which a packets column would be offered on demand instead, so it is built eagerly. The packets DataFrame itself grows by 2.3 MiB, from
44.1 to 46.4 MiB (5.2 %): `cap.packets = cap.packets.drop(columns="time")` gives that back when memory is
tight, and `read(keep_packets=False)` keeps no packets table at all.\
"""


def markdown() -> str:
    lines = [
        "# Tables",
        "",
        "Generated from `analyzer/pcapmtu/schema.py` by `python -m pcapmtu.schema`; do not edit by hand.",
        "Every capture read with `pcapmtu.read()` has these tables as pandas DataFrames.",
        "",
        *TIMES_TEXT.splitlines(),
        "",
    ]
    for name, table in TABLES.items():
        lines += [f"## `{name}`", "", "| column | dtype | meaning |", "|---|---|---|"]
        lines += [f"| `{col}` | {dt} | {text} |" for col, (dt, text) in table.items()]
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown(), end="")
