"""Connection states agree with Zeek's conn_state, case by case.

Zeek is not installable here, so each case is a small capture built for one branch of Zeek's `conn_state()`
(base/protocols/conn/main.zeek): the responder's RST is looked at first, then the originator's, then FINs,
then the handshake. `state` is the same fact in words, so the two never disagree (inspect once said "open"
after the client's FIN).
"""

from __future__ import annotations

import pytest

import pcapmtu
from support import packets as B
from support.pcapwriter import write_pcap

C, S = "10.66.0.2", "198.18.0.10"
CP, SP = 40000, 443


def c2s(flags: int, seq: int = 1001, ack: int = 5001, payload: bytes = b"") -> bytes:
    return B.tcp(C, S, CP, SP, seq=seq, ack=ack, flags=flags, payload=payload)


def s2c(flags: int, seq: int = 5001, ack: int = 1001, payload: bytes = b"") -> bytes:
    return B.tcp(S, C, SP, CP, seq=seq, ack=ack, flags=flags, payload=payload)


SYN = c2s(B.SYN, seq=1000, ack=0)
SYNACK = s2c(B.SYN | B.ACK, seq=5000)
ACK = c2s(B.ACK)
REQUEST = c2s(B.ACK | B.PSH, payload=b"GET / HTTP/1.1\r\n\r\n")
ANSWER = s2c(B.ACK | B.PSH, ack=1019, payload=b"HTTP/1.1 200 OK\r\n\r\n")
HANDSHAKE = [SYN, SYNACK, ACK]

CASES = {
    "syn only": ([SYN], "S0", "no_answer"),
    "established": ([*HANDSHAKE, REQUEST, ANSWER], "S1", "open"),
    "both closed": ([*HANDSHAKE, REQUEST, ANSWER, c2s(B.FIN | B.ACK, seq=1019, ack=5020),
                     s2c(B.FIN | B.ACK, seq=5020, ack=1020)], "SF", "closed"),
    "client closed, server silent": ([*HANDSHAKE, REQUEST, c2s(B.FIN | B.ACK, seq=1019)], "S2", "closing"),
    "server closed only": ([*HANDSHAKE, s2c(B.FIN | B.ACK)], "S3", "closing"),
    "rst answers the syn": ([SYN, s2c(B.RST | B.ACK, seq=0, ack=1001)], "REJ", "refused"),
    "rst after syn-ack, before the ack": ([SYN, SYNACK, s2c(B.RST, seq=5001)], "RSTR", "reset"),
    "client resets": ([*HANDSHAKE, REQUEST, c2s(B.RST, seq=1019)], "RSTO", "reset"),
    "server resets": ([*HANDSHAKE, REQUEST, s2c(B.RST | B.ACK)], "RSTR", "reset"),
    "both reset, the responder counts": ([*HANDSHAKE, REQUEST, c2s(B.RST, seq=1019), s2c(B.RST)], "RSTR", "reset"),
    "both reset without data": ([*HANDSHAKE, c2s(B.RST), s2c(B.RST)], "REJ", "reset"),
    "syn then the client's rst": ([SYN, c2s(B.RST, seq=1001, ack=0)], "RSTOS0", "reset"),
    "syn then the client's fin": ([SYN, c2s(B.FIN, seq=1001, ack=0)], "SH", "no_answer"),
    "midstream": ([REQUEST, ANSWER], "OTH", "open"),
    "midstream, the client closed": ([REQUEST, ANSWER, c2s(B.FIN | B.ACK, seq=1019, ack=5020)], "SH", "closing"),
    "midstream, both closed": ([REQUEST, ANSWER, c2s(B.FIN | B.ACK, seq=1019, ack=5020),
                                s2c(B.FIN | B.ACK, seq=5020, ack=1020)], "SF", "closed"),
    "syn-ack without syn, then rst": ([SYNACK, s2c(B.RST, seq=5001)], "RSTRH", "reset"),
    "syn-ack without syn, then fin": ([SYNACK, s2c(B.FIN | B.ACK, seq=5001)], "SHR", "closing"),
    "syn-ack without syn, the client's ack, then fin": ([SYNACK, ACK, s2c(B.FIN | B.ACK, seq=5001)], "S3", "closing"),
    "fin, fin, then rst: still closed": ([*HANDSHAKE, c2s(B.FIN | B.ACK), s2c(B.FIN | B.ACK, ack=1002),
                                         c2s(B.RST, seq=1002)], "SF", "closed"),
    "server acks the syn before answering": ([SYN, s2c(B.ACK, seq=5001)], "S0", "no_answer"),
    "syn, server data without syn-ack": ([SYN, s2c(B.ACK, payload=b"x" * 10)], "OTH", "open"),
    "syn and syn-ack, no ack": ([SYN, SYNACK], "S1", "open"),
}  # fmt: skip


@pytest.mark.parametrize("case", CASES)
def test_conn_state_as_zeek_decides(case: str, tmp_path) -> None:
    packets, conn_state, state = CASES[case]
    path = tmp_path / "c.pcap"
    write_pcap(path, [(1000 + i * 0.01, B.ether(p)) for i, p in enumerate(packets)])
    for keep in (True, False):  # analyze's read and inspect's lean read
        flows = pcapmtu.read(path, keep_packets=keep).flows
        assert len(flows) == 1
        assert (flows["conn_state"].iloc[0], str(flows["state"].iloc[0])) == (conn_state, state)
