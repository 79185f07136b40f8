"""M: what each side's MSS says about its interface MTU, clamps, ICMP size reports, DF pings."""

from __future__ import annotations

from ...evidence import endpoint, first_frames, flow_filter, frames_filter, service
from ...results import Severity
from ..context import Context, records
from . import Hit, rule


@rule(
    code="M001",
    name="interface-mtu-from-mss",
    severity=Severity.INFO,
    message="{who} advertises MSS {mss} in its SYNs, so its interface MTU is {mtu}",
    fix="Compare the two: a container MTU larger than the host's uplink MTU needs MSS clamping or a smaller "
    "container MTU.",
    why="A TCP stack puts its interface MTU minus 40 (IPv4) or 60 (IPv6) bytes of headers in the SYN's MSS option "
    "(RFC 9293 3.7.1), so the SYN tells the MTU of the interface it left by.",
    example={"who": "the docker host (10.66.0.2)", "mss": 1410, "mtu": 1450},
    references=("RFC 9293", "RFC 879"),
)
def interface_mtu_from_mss(ctx: Context):
    for role in ctx.captures:
        f = ctx.judged(role)
        f = f.loc[f["mss_client"] > 0, ["client_ip", "ipv", "mss_client", "syn_frame"]]
        for (client, ipv), group in f.groupby(["client_ip", "ipv"], sort=True):
            mss = int(group["mss_client"].mode().iloc[0])
            hdr = 40 if ipv == 4 else 60
            who = f"the docker host ({client})" if role == "host" else f"{client} in the {role} capture"
            # the SYNs that show it: one that left by another route (a cached path MTU) may carry less
            yield Hit(
                {"who": who, "mss": mss, "mtu": mss + hdr},
                capture=role,
                frames=first_frames(group.loc[group["mss_client"] == mss, "syn_frame"]),
                evidence={"client": client, "mss": mss, "mtu": mss + hdr, "ipv": int(ipv)},
            )


def _rewritten(ctx: Context, column: str, differs):
    """(role, connections, far capture's values) where the same handshake packet carried another MSS
    option at the far capture point; `differs(far, near)` says which difference counts."""
    if ctx.far is None or not len(ctx.pairs):
        return
    far = ctx.flows(ctx.far_role).set_index("conn")
    for role in ctx.container_roles:
        f = ctx.flows(role)
        f = f.loc[  # the columns the rules read: a row selection copies every column it keeps
            (f["twin_conn"] >= 0) & (f[column] > 0),
            ["twin_conn", "mss_client", "mss_server", "syn_frame", "synack_frame"],
        ]
        there = far[column].reindex(f["twin_conn"]).to_numpy()
        changed = f[(there > 0) & differs(there, f[column].to_numpy())]
        if len(changed):
            yield role, changed, far[column].reindex(changed["twin_conn"]), far


@rule(
    code="M002",
    name="mss-clamp-in-effect",
    severity=Severity.INFO,
    message="the host rewrites the SYN's MSS from {before} to {after} ({count} connections): an MSS clamp is in effect",
    fix="Nothing to do if {after} + 40 fits the path; this is the fix working.",
    why="MASQUERADE keeps the sequence numbers, so the same SYN is recognised on both sides of the NAT and its "
    "MSS option compared; a smaller value on the host side means a TCPMSS rule rewrote it.",
    example={"before": 1460, "after": 1410, "count": 3},
    references=("RFC 9293", "https://ipset.netfilter.org/iptables-extensions.man.html"),
)
def mss_clamp_in_effect(ctx: Context):
    for role, changed, new, host in _rewritten(ctx, "mss_client", lambda far, near: far < near):
        yield Hit(
            {
                "before": int(changed["mss_client"].mode().iloc[0]),
                "after": int(new.mode().iloc[0]),
                "count": len(changed),
            },
            capture=role,
            frames=first_frames(changed["syn_frame"]),
            evidence={
                "mss_before": int(changed["mss_client"].mode().iloc[0]),
                "mss_after": int(new.mode().iloc[0]),
                "container_syn_frames": [int(x) for x in changed["syn_frame"][:10]],
                "host_syn_frames": [int(x) for x in host["syn_frame"].reindex(changed["twin_conn"])[:10]],
            },
        )


@rule(
    code="M006",
    name="synack-mss-rewritten",
    severity=Severity.INFO,
    message="the SYN-ACK's MSS is {far_mss} in the {far} capture and {near_mss} in the {role} capture ({count} "
    "connections): something between the two points rewrites the server's MSS",
    fix="A clamp on the SYN-ACK protects downloads only if the SYN is clamped too (M002): check both directions.",
    why="A TCPMSS rule can match one direction only; comparing the same SYN-ACK on both sides of the NAT shows "
    "whether the server's advertised MSS was lowered on its way in.",
    example={"far_mss": 1460, "near_mss": 1410, "far": "host", "role": "container", "count": 3},
    references=("RFC 9293", "https://ipset.netfilter.org/iptables-extensions.man.html"),
)
def synack_mss_rewritten(ctx: Context):
    for role, changed, at_far, _far in _rewritten(ctx, "mss_server", lambda far, near: far != near):
        yield Hit(
            {
                "far_mss": int(at_far.mode().iloc[0]),
                "near_mss": int(changed["mss_server"].mode().iloc[0]),
                "far": ctx.far_role,
                "role": role,
                "count": len(changed),
            },
            capture=role,
            frames=first_frames(changed["synack_frame"]),
            evidence={
                "mss_far": int(at_far.mode().iloc[0]),
                "mss_near": int(changed["mss_server"].mode().iloc[0]),
                "synack_frames": [int(x) for x in changed["synack_frame"][:10]],
            },
        )


@rule(
    code="M003",
    name="icmp-size-report",
    severity=Severity.INFO,
    message="{times} x {kind} with next-hop MTU {mtu} from {router} in the {role} capture, about {about}{reached}",
    fix="PMTUD is working for this path if the sender then uses smaller packets; if the report never reaches "
    "the sender, clamp the MSS to {mss}.",
    why="Routers that cannot forward a DF packet send ICMP type 3 code 4 (IPv4, RFC 1191) or ICMPv6 type 2 "
    "(RFC 4443) with the MTU that fits; the quoted header says which connection it was about.",
    example={
        "kind": "ICMP fragmentation needed",
        "mtu": 1450,
        "router": "172.17.0.1",
        "role": "container",
        "about": "172.17.0.2 -> 198.18.0.10 (1500-byte packets)",
        "times": 1,
        "reached": "",
        "mss": 1410,
    },
    references=("RFC 792", "RFC 1191", "RFC 4443", "RFC 8201"),
)
def icmp_size_report(ctx: Context):
    for role, cap in ctx.captures.items():
        icmp = cap.icmp[cap.icmp["kind"].isin(["frag_needed", "packet_too_big"])]
        keys = ["kind", "ipv", "mtu", "src", "quoted_src", "quoted_sport", "quoted_dst", "quoted_dport"]
        for key, group in icmp.groupby(keys, sort=False):
            kind_code, ipv, mtu, router, qsrc, qsport, qdst, qdport = key
            hdr = 40 if ipv == 4 else 60
            size = int(group["quoted_ip_len"].max())
            if qsport >= 0:
                about = f"{endpoint(qsrc, qsport)} -> {endpoint(qdst, qdport)} ({size}-byte packets)"
            else:  # the quote holds no ports (ICMP echo, e.g. an engineer's DF ping)
                about = f"{qsrc} -> {qdst} ({size}-byte packets)"
            reached = ""
            nat_ips = {str(n).rsplit(":", 1)[0] for n in ctx.pairs["nat_client"]} if len(ctx.pairs) else set()
            if role == ctx.far_role and "container" in ctx.captures and str(qsrc) in nat_ips:
                # addressed to a NATed container connection: did the host pass it on to the container?
                seen = ctx.captures["container"].icmp
                got = seen[(seen["kind"] == kind_code) & seen["quoted_seq"].isin(group["quoted_seq"])]
                reached = "; it reached the container" if len(got) else "; it never reached the container"
            kind = "ICMP fragmentation needed" if ipv == 4 else "ICMPv6 packet too big"
            yield Hit(
                {
                    "kind": kind,
                    "mtu": int(mtu),
                    "router": router,
                    "role": role,
                    "about": about,
                    "times": len(group),
                    "reached": reached,
                    "mss": max(int(mtu) - hdr, 0),
                },
                capture=role,
                frames=first_frames(group["frame"]),
                wireshark_filter=frames_filter(group["frame"]),
                evidence={
                    "mtu": int(mtu),
                    "count": len(group),
                    "quoted_ip_len": int(group["quoted_ip_len"].max()),
                },
            )


@rule(
    code="M004",
    name="mss-exceeds-path",
    severity=Severity.WARNING,
    message="{service}: the server may send {full}-byte packets (MSS {mss}) but the path carries at most {path} bytes",
    fix="Clamp the MSS to {fix_mss} on the host, or give the container an MTU of {path}.",
    why="TCP sizes its segments from the MSS the peer advertised; when that exceeds the path MTU and PMTUD "
    "does not work, full-size segments are lost.",
    example={
        "service": "api.example (198.18.0.10:80)",
        "full": 1500,
        "mss": 1460,
        "path": 1450,
        "fix_mss": 1410,
    },
    references=("RFC 9293", "RFC 2923"),
)
def mss_exceeds_path(ctx: Context):
    limits = {ipv: p.value for ipv, p in ctx.path.items() if p and p.value}
    for role in ctx.container_roles:
        f = ctx.flows(role)
        per_row = f["ipv"].map(limits).fillna(0).to_numpy()  # 0: no path MTU known for that IP version
        for flow in records(
            f[f["handshake_ok"].to_numpy() & (per_row > 0) & (f["server_full"].to_numpy() > per_row)]
        ):
            path = ctx.path.get(int(flow.ipv))
            limit = path.value if path and path.value else None
            if not limit or flow.server_full <= limit or not flow.handshake_ok:
                continue
            yield Hit(
                {
                    "service": service(flow),
                    "full": int(flow.server_full),
                    "mss": int(flow.mss_at_server),
                    "path": limit,
                    "fix_mss": limit - int(flow.hdr),
                },
                capture=role,
                conn=int(flow.conn),
                frames=(int(flow.syn_frame), int(flow.synack_frame)),
                wireshark_filter=flow_filter(flow),
            )


@rule(
    code="M005",
    name="df-ping",
    severity=Severity.INFO,
    message="DF ping of {size} bytes to {target} in the {role} capture: {result}",
    fix="The largest size that got a reply is what the path carries.",
    why="`ping -M do -s N` sends N+28-byte packets that must not be fragmented: the engineer's own path probe.",
    example={"size": 1450, "target": "198.18.0.10", "role": "host", "result": "reply"},
    references=("RFC 1191",),
)
def df_ping(ctx: Context):
    for path in ctx.path.values():
        for s in path.signals:
            if s["kind"] in ("ping_reply", "ping_lost"):
                result = "reply" if s["kind"] == "ping_reply" else "no reply"
                yield Hit(
                    {"size": s["size"], "target": s["target"], "role": s["capture"], "result": result},
                    capture=s["capture"],
                    frames=tuple(s["frames"]),
                    wireshark_filter=frames_filter(s["frames"]),
                )
