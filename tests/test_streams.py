"""`tcp.stream eq N` names a connection exactly as Wireshark does.

pcapmtu prints each finding's connection as `tcp.stream eq N` for pasting into Wireshark. The number is
Wireshark's, not pcapmtu's row number: they differ once an ICMP error quotes TCP of a 5-tuple the capture did
not hold yet (Wireshark gives that quote a stream), and after sFlow samples (which pcapmtu leaves unknown, -1,
rather than guessed). tshark is the oracle, on every lab capture, the corpus, and a capture built to hold each
ICMP type and quote length around the limit.
"""

from __future__ import annotations

import functools
import os
import struct
from pathlib import Path

import pytest

import pcapmtu
from support import packets as B
from support import scenes as S
from support import tshark
from support.environment import SAMPLES, corpus_files, require_tool
from support.pcapwriter import write_pcap

CLIENT, SERVER, ROUTER = "10.66.0.2", "198.18.0.10", "10.66.0.1"
CLIENT6, SERVER6, ROUTER6 = "fd00::2", "fd00::3", "fd00::1"


def _quotes_capture(path: Path) -> Path:
    """Connections interleaved with ICMP errors quoting TCP: every quoting type, quote lengths around
    Wireshark's 16-byte limit, quotes before, inside and after a connection, port reuse, and non-errors."""
    records = []

    def add(packet: bytes) -> None:
        records.append((1000 + len(records) * 0.001, packet))

    def seg(sport: int, **kw) -> bytes:
        return B.tcp(CLIENT, SERVER, sport, 443, **kw)

    def seg6(sport: int) -> bytes:
        return B.tcp(CLIENT6, SERVER6, sport, 443)

    frag = struct.pack(">HH", 0, 1400)
    add(
        S.icmp4(ROUTER, CLIENT, 3, 4, frag, seg(5000, seq=100)[:48])
    )  # opens a stream; the SYN below joins it
    add(seg(5000, seq=99, flags=B.SYN))
    add(seg(6000, seq=7, flags=B.SYN))
    add(seg(6000, seq=8, flags=B.FIN | B.ACK))
    add(S.icmp4(ROUTER, CLIENT, 3, 4, frag, seg(6000, seq=8)[:48]))  # joins the open connection
    add(seg(6000, seq=900, flags=B.SYN))  # port reuse: a new stream
    for length in range(12, 21):  # 15 bytes of TCP: no stream; 16 and more: a stream each
        add(S.icmp4(ROUTER, CLIENT, 3, 4, frag, seg(7000 + length)[: 20 + length]))
        add(S.packet_too_big(ROUTER6, CLIENT6, seg6(8000 + length)[: 40 + length], 1280))
    for typ, code in ((3, 3), (4, 0), (5, 1), (11, 0), (12, 0), (8, 0), (0, 0)):  # errors, redirect, echo
        add(S.icmp4(ROUTER, CLIENT, typ, code, bytes(4), seg(9000 + typ)))
    for typ in (1, 3, 4, 128):
        add(B.ip_packet(ROUTER6, CLIENT6, struct.pack(">BBHI", typ, 0, 0, 0) + seg6(9100 + typ), 58))
    add(S.icmp4(ROUTER, CLIENT, 3, 3, bytes(4), B.udp(CLIENT, SERVER, 5000, 53, b"abc")))  # UDP: no stream
    add(seg(9999, flags=B.SYN))
    write_pcap(path, records, linktype=101)
    return path


def _captures() -> list:
    files = [p for p in corpus_files("semantic", "format") if not p.name.endswith(".md")]
    files += sorted(SAMPLES.glob("*/*.pcap*"))
    fresh = os.environ.get("PCAPMTU_LAB_DIR")
    if fresh:
        files += sorted(Path(fresh).glob("*/*.pcap*"))
    return [pytest.param(p, id=f"{p.parent.name}/{p.name}") for p in files]


@functools.cache
def _tshark_streams(path: Path) -> dict[int, int]:
    """frame -> tcp.stream for frames whose own TCP layer Wireshark decodes (not a quote inside ICMP)."""
    run = tshark.run(path, "-Y", "tcp && !icmp && !icmpv6 && !sflow", "-T", "fields", "-E", "occurrence=l",
                     "-e", "frame.number", "-e", "tcp.stream", timeout=300, check=True)  # fmt: skip
    return {int(a): int(b) for a, b in (line.split("\t") for line in run.stdout.splitlines() if line.strip())}


def _check_against_tshark(path: Path) -> int:
    cap = pcapmtu.read(path)
    theirs = _tshark_streams(path)
    streams = cap.flows["tcp_stream"].to_numpy()
    p = cap.packets
    sflow = cap.stats.first_sflow_frame
    checked = 0
    for frame, conn, copy in zip(p["frame"].to_numpy(), p["conn"].to_numpy(), p["dup_copy"].to_numpy(),
                                 strict=True):  # fmt: skip
        if conn < 0:
            assert copy or int(frame) not in theirs, f"frame {frame}: tshark has TCP that pcapmtu left out"
            continue
        mine = int(streams[conn])
        if mine == -1:  # unknown only where the capture holds sFlow, from the first datagram on
            assert sflow is not None and cap.flows["first_frame"].iloc[conn] >= sflow, f"frame {frame}: -1"
            continue
        assert theirs.get(int(frame)) == mine, (
            f"frame {frame}: tcp.stream {theirs.get(int(frame))}, ours {mine}"
        )
        checked += 1
    return checked


@pytest.mark.oracle
@pytest.mark.parametrize("path", _captures())
def test_tcp_stream_is_wiresharks(path: Path) -> None:
    require_tool("tshark")
    _check_against_tshark(path)


@pytest.mark.oracle
def test_icmp_quotes_open_streams_as_in_wireshark(tmp_path: Path) -> None:
    require_tool("tshark")
    path = _quotes_capture(tmp_path / "quotes.pcap")
    assert _check_against_tshark(path) >= 5
    cap = pcapmtu.read(path)
    flows = cap.flows.set_index("client_port")
    # the connection after every quote: its number counts the quote-only streams before it
    assert int(flows.loc[9999, "tcp_stream"]) > int(flows.loc[9999, "conn"])
    # the quote before the SYN opened the stream the connection continues
    assert (flows.loc[5000, "tcp_stream"] == 0).all()


@pytest.mark.oracle
def test_sflow_leaves_later_streams_unknown() -> None:
    require_tool("tshark")
    path = next((p for p in corpus_files("semantic") if p.name == "suricata__filestore-5408.pcap"), None)
    if path is None:
        pytest.skip("suricata__filestore-5408.pcap is not in the corpus")
    cap = pcapmtu.read(path)
    first = cap.stats.first_sflow_frame
    assert first is not None
    before = cap.flows[cap.flows["first_frame"] < first]
    after = cap.flows[cap.flows["first_frame"] >= first]
    assert len(before) and (before["tcp_stream"] >= 0).all()
    assert len(after) and (after["tcp_stream"] == -1).all()
    assert _check_against_tshark(path) > 0
