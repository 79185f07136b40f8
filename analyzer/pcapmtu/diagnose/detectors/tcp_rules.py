"""T: how connections failed at the TCP level."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ...evidence import first_frames, flow_filter, service
from ...ingest.tcp import RST as RST_FLAG
from ...results import Reason, Severity, Verdict
from .. import rowkeys
from ..context import Context, records
from . import Hit, rule

MIN_RTO_S = 0.1  # below any stack's minimum RTO (Linux 200 ms, RFC 6298 1 s): copies, not timeouts


@rule(
    code="T001",
    name="retransmission-backoff",
    severity=Severity.WARNING,
    message="{service}: the {sender} sent the same segment {times} times with growing gaps ({gaps}) - "
    "retransmission timeouts with exponential backoff",
    fix="Something on the path drops these segments every time; compare their size with the path MTU.",
    why="After each retransmission timeout TCP doubles the timeout (RFC 6298 5.5), so a segment lost again and "
    "again shows up at 1, 2, 4, 8... second gaps: a stall, not congestion.",
    example={
        "service": "api.example (198.18.0.10:80)",
        "sender": "client",
        "times": 6,
        "gaps": "0.2s, 0.4s, 0.8s, 1.6s, 3.2s",
    },
    references=("RFC 6298",),
)
def retransmission_backoff(ctx: Context):
    for role in ctx.captures:
        flows = ctx.flows(role)
        flows = flows[flows["retransmissions"] >= 2]
        if role == ctx.far_role:
            # a far copy of a container connection only when the far capture saw more than the container did
            twins = [ctx.twin(role, h) for h in flows["conn"]]
            paired = [t for t in twins if t is not None]
            values = ctx.flow_values([t[0] for t in paired], [t[1] for t in paired], "retransmissions")
            resent = dict(zip(paired, values, strict=True))  # the twin's count, by the twin
            more = [
                own or (t is not None and resent[t] < r)
                for own, t, r in zip(flows["host_own"], twins, flows["retransmissions"], strict=True)
            ]
            flows = flows[np.array(more, dtype=bool)]  # a mask even when empty (a list would pick columns)
        packets = ctx.captures[role].packets
        conns = flows["conn"].to_numpy(dtype=np.int64)
        resent = most_resent(packets, conns)
        ts, frame, ip_len = (packets[c].to_numpy() for c in ("ts", "frame", "ip_len"))
        for k, flow in enumerate(records(flows)):
            for d, sender in ((1, "server"), (0, "client")):
                same = resent.get((k, d))  # the first most re-sent segment's rows, in packet order
                if same is None:
                    continue
                gaps = np.diff(ts[same])
                # timeouts, not copies: the smallest retransmission timeout of common stacks is 200 ms
                if len(gaps) >= 2 and gaps[0] >= MIN_RTO_S and np.all(gaps[1:] >= gaps[:-1] * 1.4):
                    yield Hit(
                        {
                            "service": service(flow),
                            "sender": sender,
                            "times": len(same),
                            "gaps": ", ".join(f"{g:.1f}s" for g in gaps),
                        },
                        capture=role,
                        conn=int(flow.conn),
                        frames=first_frames(frame[same]),
                        wireshark_filter=flow_filter(flow),
                        evidence={"segment_ip_len": int(ip_len[same].max()), "direction": sender},
                    )
                    break


def most_resent(packets: pd.DataFrame, conns: np.ndarray) -> dict[tuple[int, int], np.ndarray]:
    """(position in `conns`, direction) -> the packet rows, in packet order, of the data segment sent most often
    that way (the lowest sequence number among equals), where one was sent three times or more. SYN retries
    are T002's business: data segments only. All connections at once (a black hole makes thousands
    re-send), not numpy per connection (~0.7 ms each)."""
    rows, k = rowkeys.connection_rows(
        packets["conn"].to_numpy(), conns, packets["payload_len"].to_numpy() > 0
    )
    d = packets["dir"].to_numpy()[rows].astype(np.int64)
    one_way = (d == 0) | (d == 1)
    rows, k, d = rows[one_way], k[one_way], d[one_way]
    if not len(rows):
        return {}
    seq = packets["rel_seq"].to_numpy()[rows]
    order = rowkeys.conn_order(2 * k + d, seq)  # by connection, direction, segment; packet order inside
    rows, k, d, seq = rows[order], k[order], d[order], seq[order]
    segment = np.flatnonzero(np.r_[True, (k[1:] != k[:-1]) | (d[1:] != d[:-1]) | (seq[1:] != seq[:-1])])
    count = np.diff(np.r_[segment, len(rows)])
    way = np.flatnonzero(
        np.r_[True, (k[segment][1:] != k[segment][:-1]) | (d[segment][1:] != d[segment][:-1])]
    )
    most = np.maximum.reduceat(count, way)  # per (connection, direction): the most copies of one segment
    owner = np.repeat(np.arange(len(way)), np.diff(np.r_[way, len(segment)]))
    top = np.flatnonzero((count == most[owner]) & (most[owner] >= 3))
    first_top = top[np.r_[True, owner[top][1:] != owner[top][:-1]]] if len(top) else top  # lowest sequence
    out = {}
    for g in first_top.tolist():
        a = segment[g]
        out[(int(k[a]), int(d[a]))] = rows[a : a + count[g]]
    return out


@rule(
    code="T002",
    name="no-answer",
    severity=Severity.ERROR,
    message="{service}: {syns} SYN(s) got no answer - the port is filtered or the server is unreachable",
    fix="Check firewalls and routes to {server}; this is not an MTU problem (SYNs are small).",
    why="A SYN is 60-80 bytes: if it is never answered the packet was dropped by a filter or routing, not by size. "
    "Only a SYN the capture follows for its first retransmission timeout (1 s, RFC 6298) counts: one sent just "
    "before the capture ended may have had its answer on the way.",
    example={"service": "api.example (198.18.0.10:443)", "syns": 7, "server": "198.18.0.10"},
    references=("RFC 9293", "RFC 6298"),
    implies=Verdict.NOT_MTU,
    reason=Reason.FILTERED,
)
def no_answer(ctx: Context):
    for role, flow in _in_state(ctx, "no_answer"):
        if flow.followed_s < ctx.th.stall_s:
            continue  # the capture ended before the SYN's first timeout: its answer may have been on the way
        yield Hit(
            {"service": service(flow), "syns": int(flow.pkts_c2s), "server": flow.server_ip},
            capture=role,
            conn=int(flow.conn),
            frames=(int(flow.syn_frame),),
            wireshark_filter=flow_filter(flow),
        )


@rule(
    code="T003",
    name="refused",
    severity=Severity.ERROR,
    message="{service}: the connection was refused (RST in answer to the SYN)",
    fix="Nothing listens on {server}:{port}, or a firewall rejects it; not an MTU problem.",
    why="A reset in answer to a SYN means the host is reachable and said no.",
    example={"service": "api.example (198.18.0.10:443)", "server": "198.18.0.10", "port": 443},
    references=("RFC 9293",),
    implies=Verdict.NOT_MTU,
    reason=Reason.REFUSED,
)
def refused(ctx: Context):
    for role, flow in _in_state(ctx, "refused"):
        yield Hit(
            {"service": service(flow), "server": flow.server_ip, "port": int(flow.server_port)},
            capture=role,
            conn=int(flow.conn),
            frames=(int(flow.syn_frame),),
            wireshark_filter=flow_filter(flow),
        )


@rule(
    code="T005",
    name="stall-without-handshake",
    severity=Severity.WARNING,
    message="{service}: captured without {missing}, stalled {stall:.1f} s with {what} and never completed",
    fix="Capture from before the connection starts, on both sides, with the whole TCP header (`tcpdump -s 0`, "
    "or at least 128 bytes), so that its MSS and the sizes of what is lost are known; with the handshake "
    "pcapmtu can tell a black hole from other loss.",
    why="A connection already open when the capture began has no SYN to tell its MSS, and a snap length "
    "shorter than the TCP header cuts the MSS option off the SYN: a stall with holes in the data is trouble, "
    "but which kind the capture cannot say. It is never judged healthy.",
    example={
        "service": "198.18.0.10:80",
        "missing": "its handshake",
        "stall": 8.0,
        "what": "holes in the server's data",
    },
    references=("RFC 2018", "RFC 9293"),
    implies=Verdict.INCONCLUSIVE,
)
def stall_without_handshake(ctx: Context):
    for role in ctx.captures:
        f = ctx.judged(role)
        holes = f["s2c_holes"] | f["c2s_holes"] | (f["lost_segments_s2c"] > 0) | (f["lost_segments_c2s"] > 0)
        holes |= f["s2c_never_acked"] > 0
        # no SYN, or no SYN-ACK, or their MSS options cut off by the snap length: the full size is unknown
        unknown = ~f["handshake_ok"] | (f["server_full"] <= 0)
        cand = f[
            unknown
            & holes
            & (f["stalled_s"] >= ctx.th.stall_s)
            & (f["state"] != "closed")
            & ~f["response_complete"]
        ]
        for flow in records(cand):
            if flow.max_sack_hole_c2s > 0:
                what = (
                    f"{int(flow.max_sack_hole_c2s)} bytes of the server's data missing (the client's SACKs)"
                )
            elif flow.s2c_holes:
                what = "holes in the server's data"
            elif flow.s2c_never_acked > 0 and flow.lost_segments_s2c == 0 and flow.lost_segments_c2s == 0:
                what = (
                    f"{int(flow.s2c_never_acked)} bytes the server had sent never acknowledged by the client"
                )
            else:
                what = "segments re-sent and never acknowledged"
            missing = "an MSS option in its handshake" if flow.handshake_ok else "its handshake"
            yield Hit(
                {"service": service(flow), "missing": missing, "stall": float(flow.stalled_s), "what": what},
                capture=role,
                conn=int(flow.conn),
                frames=(int(flow.first_frame),),
                wireshark_filter=flow_filter(flow),
            )


def _in_state(ctx: Context, state: str):
    """(role, flow) of every connection in `state`; the host's copies of container connections skipped."""
    for role in ctx.captures:
        f = ctx.judged(role)
        f = f[f["state"] == state]
        yield from ((role, flow) for flow in records(f))


@rule(
    code="T004",
    name="reset",
    severity=Severity.WARNING,
    message="{service}: the {who} reset the connection after {duration:.1f} s",
    fix="A reset after a stall is usually the application giving up; look at what came before it.",
    why="RST ends a connection at once; it is a symptom whose cause is in the packets before it.",
    example={"service": "api.example (198.18.0.10:443)", "who": "server", "duration": 3.1},
    references=("RFC 9293",),
)
def reset(ctx: Context):
    for role in ctx.captures:
        f = ctx.judged(role)
        stalled = (f["stalled_s"] >= ctx.th.stall_s) | (f["bytes_s2c"] == 0)
        for flow in records(f[(f["state"] == "reset") & f["handshake_ok"] & stalled]):
            # who sent the RST, and its frame: not who closed first (a client's FIN answered by the server's
            # RST is the server's reset)
            p = ctx.conn_packets(role, int(flow.conn), ["frame", "dir", "tcp_flags"])
            rst = p[(p["tcp_flags"].to_numpy() & RST_FLAG) != 0]
            if not len(rst):
                continue
            who = "server" if int(rst["dir"].iloc[0]) == 1 else "client"
            yield Hit(
                {"service": service(flow), "who": who, "duration": float(flow.duration)},
                capture=role,
                conn=int(flow.conn),
                frames=(int(rst["frame"].iloc[0]),),
                wireshark_filter=flow_filter(flow),
                evidence={"reset_by": who},
            )
