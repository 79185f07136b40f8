"""Connection states: Zeek's conn_state, decided as Zeek decides it, from the first-event positions the TCP
reconstruction gathers per connection and direction (flows.py); `state` in words derives from it there."""

from __future__ import annotations

import re

import numpy as np

STATES = ("closed", "closing", "reset", "refused", "no_answer", "open")

# Zeek's TCP endpoint states (analyzer/protocol/tcp), as far as first-event positions tell them
INACTIVE, SYN_SENT, SYN_ACK_SENT, PARTIAL, ESTABLISHED, CLOSED, RESET = range(7)
RSTOS0_HISTORY = re.compile(r"\^?S[^HAFGIQ]*R")  # Zeek: the originator's SYN, then its RST, nothing between


def zeek_conn_state(
    agg: dict, bytes_c2s, bytes_s2c, history: np.ndarray, none: int
) -> tuple[np.ndarray, ...]:
    """Zeek's conn_state (base/protocols/conn/main.zeek, `conn_state()`) from each endpoint's last state, as
    Zeek's TCP analyzer sets it (UpdateInactiveState and friends): a SYN-ACK establishes both sides (the
    client's SYN was seen) or the server's (it was not; the client's next ACK then establishes it); a FIN
    closes; a RST resets, except after the endpoint's own FIN when the other side closed too. The client is
    Zeek's originator. Also returns whether the handshake was seen (SYN, then SYN-ACK) and whether a RST
    counts. `none` is the position an event a connection never had is given (segments.NONE)."""
    seen = {key: agg[key] != none for key in agg if key.endswith(("_pos_c2s", "_pos_s2c"))}
    syn, synack = seen["syn_pos_c2s"], seen["synack_pos_s2c"]
    handshake = syn & synack & (agg["synack_pos_s2c"] > agg["syn_pos_c2s"])
    after = [seen[k] & (agg[k] > agg["synack_pos_s2c"]) for k in ("pure_ack_pos_c2s", "data_pos_c2s")]
    late_client = synack & ~handshake & (after[0] | after[1])  # the SYN was missed, then the client ACKed
    # a RST after the endpoint's own FIN does not count once the other side sent a FIN too
    rst_c = seen["rst_pos_c2s"] & ~(
        seen["fin_pos_c2s"] & (agg["fin_pos_c2s"] < agg["rst_pos_c2s"]) & seen["fin_pos_s2c"]
    )
    rst_s = seen["rst_pos_s2c"] & ~(
        seen["fin_pos_s2c"] & (agg["fin_pos_s2c"] < agg["rst_pos_s2c"]) & seen["fin_pos_c2s"]
    )
    # the server's bare ACKs of a SYN it has not answered yet leave it inactive
    quiet = syn & ~synack & ~seen["data_pos_s2c"] & ~seen["fin_pos_s2c"] & ~seen["rst_pos_s2c"]
    orig = np.select(
        [rst_c, seen["fin_pos_c2s"], handshake | late_client, syn, seen["first_pos_c2s"]],
        [RESET, CLOSED, ESTABLISHED, SYN_SENT, PARTIAL],
        default=INACTIVE,
    )
    resp = np.select(
        [rst_s, seen["fin_pos_s2c"], synack, seen["first_pos_s2c"] & ~quiet],
        [RESET, CLOSED, ESTABLISHED, PARTIAL],
        default=INACTIVE,
    )
    o_inactive, r_inactive = np.isin(orig, (INACTIVE, PARTIAL)), np.isin(resp, (INACTIVE, PARTIAL))
    no_data = (np.asarray(bytes_c2s) == 0) & (np.asarray(bytes_s2c) == 0)
    syn_then_rst = np.fromiter((bool(RSTOS0_HISTORY.match(h)) for h in history), bool, len(history))
    state = np.select(
        [
            (resp == RESET) & (np.isin(orig, (SYN_SENT, SYN_ACK_SENT)) | ((orig == RESET) & no_data)),
            (resp == RESET) & o_inactive,
            resp == RESET,
            (orig == RESET) & r_inactive & syn_then_rst,
            (orig == RESET) & r_inactive,
            orig == RESET,
            (orig == CLOSED) & (resp == CLOSED),
            (orig == CLOSED) & r_inactive,
            orig == CLOSED,
            (resp == CLOSED) & o_inactive,
            resp == CLOSED,
            (orig == SYN_SENT) & (resp == INACTIVE),
            (orig == ESTABLISHED) & (resp == ESTABLISHED),
        ],
        ["REJ", "RSTRH", "RSTR", "RSTOS0", "OTH", "RSTO", "SF", "SH", "S2", "SHR", "S3", "S0", "S1"],
        default="OTH",
    )
    return state, handshake, rst_c | rst_s
