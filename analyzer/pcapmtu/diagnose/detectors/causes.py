"""L: look-alikes that are not MTU problems - loss that spares no size, and slow servers."""

from __future__ import annotations

import numpy as np

from ...evidence import flow_filter, service
from ...results import Reason, Severity, Verdict
from ..context import Context, records
from . import Hit, rule


@rule(
    code="L001",
    name="lossy-link",
    severity=Severity.WARNING,
    message="{service}: {retrans} retransmissions, yet full-size {full}-byte packets were delivered - random loss, "
    "not a size limit",
    fix="Look for a congested or faulty link; MSS clamping will not help.",
    why="An MTU problem loses every packet above a size and none below it; loss that also hits small packets "
    "while full-size ones get through is the link, not the MTU.",
    example={"service": "api.example (198.18.0.10:80)", "retrans": 2, "full": 1500},
    references=("RFC 2018", "RFC 6298"),
    implies=Verdict.NOT_MTU,
    reason=Reason.LOSSY_LINK,
)
def lossy_link(ctx: Context):
    for role in ctx.captures:
        f = ctx.judged(role)
        # the direction this capture receives: full-size packets in it crossed the path. (The sender's own
        # capture shows what it sent, not what arrived, so the client's side needs its transfer completed.)
        # a rate, not a count: one retransmission in a short transfer is loss, two in a long one are noise
        ratio = ctx.th.lossy_retrans_ratio
        # and a single retransmission counts only with a hole the receiver saw (a tail-loss probe has none)
        lossy_s2c = (
            (f["retrans_s2c"] >= 1)
            & (f["retrans_s2c"] >= ratio * f["pkts_s2c"])
            & ((f["retrans_s2c"] >= 2) | f["s2c_holes"])
        )
        lossy_c2s = (
            (f["retrans_c2s"] >= 1)
            & (f["retrans_c2s"] >= ratio * f["pkts_c2s"])
            & ((f["retrans_c2s"] >= 2) | f["c2s_holes"])
        )
        # where this capture saw segments lost (at the sender or upstream of the loss), some of them must be
        # no larger than one that was delivered: loss that spares no size
        size_blind_s2c = (f["lost_segments_s2c"] == 0) | (f["lost_not_larger_s2c"] > 0)
        received = lossy_s2c & f["full_delivered_s2c"] & size_blind_s2c
        sent = lossy_c2s & f["full_delivered_c2s"] & (f["state"] == "closed") & ~f["c2s_holes"]
        # without the handshake the full size is the largest packet seen, which a receiver's capture shows
        # delivered by definition: "full-size packets got through" cannot be told there
        cand = f[(received | sent) & (f["icmp_reports"] == 0) & ~f["full_estimated"]]
        for flow in records(cand):
            full = int(flow.server_full if flow.full_delivered_s2c else flow.client_full)
            yield Hit(
                {"service": service(flow), "retrans": int(flow.retransmissions), "full": full},
                capture=role,
                conn=int(flow.conn),
                wireshark_filter=flow_filter(flow) + " && tcp.analysis.retransmission",
            )


@rule(
    code="L002",
    name="slow-server",
    severity=Severity.WARNING,
    message="{service}: the server took {wait:.1f} s to answer the request, with no loss",
    fix="The server (or something behind it) is slow; the network delivered everything.",
    why="A long pause with no retransmission, after which data of every size arrives, is the application "
    "thinking, not the path dropping. The pause counts when the server had acknowledged the request and "
    "owed the answer (after TLS, the request is the first application data after the handshake), so a "
    "quick handshake does not hide a slow answer.",
    example={"service": "api.example (198.18.0.10:80)", "wait": 4.0},
    references=(),
    implies=Verdict.NOT_MTU,
    reason=Reason.SERVER_SLOW,
)
def slow_server(ctx: Context):
    for role in ctx.captures:
        f = ctx.judged(role)
        first = f["first_data_ts_s2c"] - f["first_data_ts_c2s"]
        # the longest silence, when the server owed the answer to an acknowledged request and then gave it
        owed = f["max_idle"].where((f["idle_turn"] == "server") & (f["bytes_s2c_after_idle"] > 0), 0.0)
        wait = np.maximum(first, owed)
        cand = f[
            f["request_sent"]
            & (f["first_data_ts_s2c"] > 0)
            & (wait >= ctx.th.slow_response_s)
            & (f["retransmissions"] == 0)
            & (f["lost_segments_s2c"] == 0)
            & ~f["s2c_holes"]
            # full-size segments arrived, or the answer fits in one segment: size cannot be the problem
            & (f["full_delivered_s2c"] | (f["bytes_s2c"] < f["server_full"] - f["hdr"]))
        ]
        for flow, w in zip(records(cand), wait[cand.index], strict=True):
            yield Hit(
                {"service": service(flow), "wait": float(w)},
                capture=role,
                conn=int(flow.conn),
                wireshark_filter=flow_filter(flow),
            )
