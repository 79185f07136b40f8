"""B: what a sender did with an ICMP size report - PMTUD that works, and a report that is ignored.

An ICMP fragmentation-needed (RFC 1191) or packet-too-big (RFC 4443) quotes the packet it is about, so it
names one connection and one direction. What follows in that direction tells the outcome: segments no
larger than the reported MTU that the receiver acknowledges (PMTUD works; the stall it cost is measured),
or more full-size segments that are never acknowledged (the report never reached the sender's TCP: a host
firewall, or a middlebox between this capture point and the sender, dropped it).
"""

from __future__ import annotations

import numpy as np

from ...evidence import first_frames, flow_filter, frames_filter, service
from ...results import Severity, Verdict
from ..context import Context, records
from . import Hit, rule

SIZE_REPORTS = ("frag_needed", "packet_too_big")
REACT_S = 0.2  # segments sent this soon after the report may have been on their way already


def _outcomes(ctx: Context):
    """(role, flow, sender, reports, after) for every judged connection an ICMP size report quotes."""
    for role, cap in ctx.captures.items():
        icmp = cap.icmp[cap.icmp["kind"].isin(SIZE_REPORTS) & (cap.icmp["quoted_sport"] >= 0)]
        if not len(icmp):
            continue
        f = ctx.judged(role)
        quoted = set(zip(icmp["quoted_src"].astype(str), icmp["quoted_sport"], strict=True))
        ends = zip(
            f["client_ip"].astype(str),
            f["client_port"],
            f["server_ip"].astype(str),
            f["server_port"],
            strict=True,
        )
        f = f[[(c, cp) in quoted or (s_, sp) in quoted for c, cp, s_, sp in ends]]  # only connections quoted
        fate = ctx.fate(role) if len(f) else None
        for flow in records(f):
            for d, sender, src, sport, dst, dport in (
                (0, "client", flow.client_ip, flow.client_port, flow.server_ip, flow.server_port),
                (1, "server", flow.server_ip, flow.server_port, flow.client_ip, flow.client_port),
            ):
                reports = icmp[
                    (icmp["quoted_src"].astype(str) == str(src))
                    & (icmp["quoted_sport"] == sport)
                    & (icmp["quoted_dst"].astype(str) == str(dst))
                    & (icmp["quoted_dport"] == dport)
                ]
                if not len(reports):
                    continue
                p = ctx.conn_packets(role, int(flow.conn))
                data = p[(p["dir"] == d) & (p["payload_len"] > 0)]
                data = data.assign(fate=fate[data.index.to_numpy()])
                yield role, flow, sender, reports, data


@rule(
    code="B004",
    name="pmtud-working",
    severity=Severity.INFO,
    message="{service}: PMTUD works - {kind} (next-hop MTU {mtu}) about the {sender}'s {big}-byte packets, then the "
    "{sender} re-sent in {size}-byte packets that were acknowledged; it cost {cost_ms:.1f} ms",
    fix="Nothing to fix: the path is narrower than the endpoints think ({mtu}), and ICMP tells them. Clamping "
    "the MSS to {mss} would save the first round trips of each connection.",
    why="RFC 1191 / RFC 8201: a router that cannot forward a DF packet reports the MTU that fits; a sender that "
    "gets the report re-sends smaller and goes on. The stall is a retransmission or two, not a hang.",
    example={
        "service": "api.example (198.18.0.10:80)",
        "kind": "ICMP fragmentation needed",
        "mtu": 1450,
        "sender": "client",
        "big": 1500,
        "size": 1450,
        "cost_ms": 0.35,
        "mss": 1410,
    },
    references=("RFC 1191", "RFC 8201", "RFC 4443"),
)
def pmtud_working(ctx: Context):
    for role, flow, sender, reports, data in _outcomes(ctx):
        mtu = int(reports["mtu"].min())
        t0 = float(reports["ts"].min())
        after = data[data["ts"] > t0]
        fits = after[(after["ip_len"] <= mtu) & (after["fate"] == 1)]
        late_big = after[(after["ts"] > t0 + REACT_S) & (after["ip_len"] > mtu)]
        big = data[(data["ip_len"] > mtu) & (data["ts"] <= t0)]  # what drew the report
        if not len(fits) or (late_big["fate"] != 1).sum() >= 2 or not len(big):
            continue
        cost = float(fits["ts"].iloc[0]) - float(big["ts"].iloc[0])
        hdr = int(flow.hdr)
        yield Hit(
            {
                "service": service(flow),
                "kind": _kind(reports),
                "mtu": mtu,
                "sender": sender,
                "big": int(big["ip_len"].max()),
                "size": int(fits["ip_len"].max()),
                "cost_ms": max(cost, 0) * 1e3,
                "mss": mtu - hdr,
            },
            capture=role,
            conn=int(flow.conn),
            frames=first_frames(
                np.concatenate([reports["frame"].to_numpy()[:4], fits["frame"].to_numpy()[:4]])
            ),
            wireshark_filter=flow_filter(flow) + " || " + frames_filter(reports["frame"][:20]),
            evidence={
                "mtu": mtu,
                "sender": sender,
                "reports": len(reports),
                "cost_s": round(max(cost, 0), 6),
                "resent_ip_len": int(fits["ip_len"].max()),
            },
        )


@rule(
    code="B005",
    name="icmp-size-report-ignored",
    severity=Severity.ERROR,
    message="{service}: {times} x {kind} (next-hop MTU {mtu}) about the {sender}'s packets passed this capture point, "
    "yet the {sender} went on sending {big}-byte packets ({late} after the first report), none acknowledged",
    fix="Let ICMP {icmp_name} through to the {sender} (its host firewall, security groups, rp_filter), or clamp "
    "the MSS to {mss} so no packet needs it.",
    why="A sender that really got the report would lower its path MTU at once (RFC 1191, RFC 8201); more "
    "full-size packets after it mean the report was dropped between this point and the sender's TCP - the "
    "black hole of RFC 2923 with the ICMP in plain sight.",
    example={
        "service": "jenkins-updates.example (198.18.0.11:443)",
        "times": 13,
        "kind": "ICMP fragmentation needed",
        "mtu": 1450,
        "sender": "server",
        "big": 1500,
        "late": 5,
        "mss": 1410,
        "icmp_name": "type 3 code 4",
    },
    references=("RFC 2923", "RFC 1191", "RFC 8201"),
    implies=Verdict.MTU_BLACKHOLE,
)
def icmp_size_report_ignored(ctx: Context):
    for role, flow, sender, reports, data in _outcomes(ctx):
        mtu = int(reports["mtu"].min())
        t0 = float(reports["ts"].min())
        late_big = data[(data["ts"] > t0 + REACT_S) & (data["ip_len"] > mtu)]
        if len(late_big) < 2 or (late_big["fate"] == 1).any():
            continue
        hdr = int(flow.hdr)
        yield Hit(
            {
                "service": service(flow),
                "times": len(reports),
                "kind": _kind(reports),
                "mtu": mtu,
                "sender": sender,
                "big": int(late_big["ip_len"].max()),
                "late": len(late_big),
                "mss": mtu - hdr,
                "icmp_name": "type 3 code 4" if int(flow.ipv) == 4 else "v6 type 2",
            },
            capture=role,
            conn=int(flow.conn),
            frames=first_frames(
                np.concatenate([reports["frame"].to_numpy()[:4], late_big["frame"].to_numpy()[:8]])
            ),
            wireshark_filter=flow_filter(flow) + " || " + frames_filter(reports["frame"][:20]),
            evidence={
                "mtu": mtu,
                "sender": sender,
                "reports": len(reports),
                "full_after_report": len(late_big),
            },
        )


def _kind(reports) -> str:
    return (
        "ICMP fragmentation needed" if (reports["kind"] == "frag_needed").all() else "ICMPv6 packet too big"
    )
