"""B: the RFC 2923 black-hole pattern, both directions, and recovery by packetization-layer probing."""

from __future__ import annotations

from ...evidence import first_frames, flow_filter, service
from ...results import Severity, Verdict
from ..context import Context, records
from ..path_mtu import cited_for
from . import Hit, rule


def _host_twin(ctx: Context, role: str, flow):
    if role == ctx.far_role or ctx.far is None or flow.twin_conn < 0:
        return None
    twin = int(flow.twin_conn)
    return ctx.flow(ctx.far_role, twin) if twin < len(ctx.flows(ctx.far_role)) else None


def _clamp(path, hdr: int) -> dict[str, str]:
    """The fix's numbers as phrases, only as exact as the evidence: the MTU when pinned, the largest size
    acknowledged when only a bracket is known (always safe), else a bound and how to measure."""
    measure = "; measure it first with ping -M do -s SIZE"
    if path is not None and path.value:
        return {"fix_mss": f"to {path.value - hdr}", "path": f"to {path.value}"}
    if path is not None and path.low and path.high:
        return {
            "fix_mss": f"to {path.low - hdr} (the path carries {path.low} bytes, not {path.high})",
            "path": f"to {path.low}",
        }
    if path is not None and path.high:
        return {
            "fix_mss": f"below {path.high - hdr} (the path does not carry {path.high}-byte packets{measure})",
            "path": f"below {path.high}",
        }
    return {
        "fix_mss": f"to the path MTU minus {hdr} (the captures do not show it{measure})",
        "path": "to the path MTU",
    }


def _where_lost(ctx: Context, role: str, flow, direction: str) -> str:
    twin = _host_twin(ctx, role, flow)
    at_server = _receiver(ctx, role) == "client"
    if at_server:
        return (
            "after they left the server, on the way to the client (this capture, taken at the server, shows "
            "what was sent; the client's ACKs show what arrived)"
            if direction == "s2c"
            else "before they reached the server: the client's ACKed data stops short of them"
        )
    if role == "host":
        return "upstream of the host's uplink (on the path or overlay)"
    if twin is None:
        return "somewhere between the server and the container (no host capture of this connection)"
    if ctx.far_role == "server":
        return (
            "between the server and the container: the server sent them, the container never got them"
            if direction == "s2c"
            else "between the container and the server: they never reached it"
        )
    if direction == "s2c":
        if twin["max_ip_len_s2c"] >= flow.server_full:
            return "between the host's uplink and the container (bridge, veth or inside the container)"
        return "before the host's uplink: they are missing from the host capture too (on the path or overlay)"
    if twin["max_ip_len_c2s"] >= flow.client_full:
        return "after the host's uplink, on the path"
    return "inside the docker host: the container sent them, the host's uplink never did"


def _receiver(ctx: Context, role: str) -> str:
    """Who the server's packets were meant for, as seen from this capture: its role, or the client when
    the capture was taken at the server (it holds what was sent, not what arrived)."""
    v = ctx.vantage.get(role)
    return "client" if v is not None and v.position == "server" else role


@rule(
    code="B001",
    name="pmtud-blackhole",
    severity=Severity.ERROR,
    message="{service}: PMTUD black hole - the server's {full}-byte packets never reached the {role}; the largest "
    "that did was {largest} bytes, and no ICMP size report came back",
    fix="Clamp the MSS {fix_mss} on the docker host, or set the container MTU {path}.",
    why="RFC 2923: when ICMP 'fragmentation needed' is filtered, a sender keeps sending full-size DF packets that "
    "a smaller-MTU hop drops; handshake and small replies pass, every full-size segment is lost and re-lost.",
    example={
        "service": "jenkins-updates.example (198.18.0.11:443)",
        "full": 1500,
        "role": "container",
        "largest": 1252,
        "fix_mss": "to 1410",
        "path": "to 1450",
    },
    references=("RFC 2923", "RFC 1191", "RFC 8201", "RFC 4821"),
    implies=Verdict.MTU_BLACKHOLE,
)
def pmtud_blackhole(ctx: Context):
    for role in ctx.captures:
        f = ctx.judged(role)
        cand = f[
            (f["handshake_ok"] | f["full_estimated"])
            & (f["request_sent"] | f["full_estimated"])
            & (f["server_full"] > 0)
            & ~f["full_delivered_s2c"]
            & (f["stalled_s"] >= ctx.th.stall_s)
            & ~f["resumed_smaller"]
            & ~f["upload_stall"]
            & ~f["response_complete"]
            & ~f["server_aborted"]
            & (f["stalled_after_request"] | f["full_estimated"])
            & (f["icmp_reports"] == 0)  # with a size report in the capture, B004/B005 tell what became of it
        ]
        for flow in records(cand):
            path = ctx.path.get(int(flow.ipv))
            # only a path MTU pinned by an independent signal (a host's SYN, ICMP, DF pings, a stated MTU)
            # counts here: a bracket built from this very stall would be circular
            # ... and only in words that cite no other server's packets
            said = cited_for(path, flow.server_ip) if path is not None else ""
            bound = (
                path is not None
                and path.value is not None
                and path.independent
                and path.value < flow.server_full
            )
            reasons = []
            if flow.s2c_holes:
                reasons.append("the client's ACKs show holes in the server's data")
            if flow.full_lost_s2c:
                reasons.append(
                    f"the server's {int(flow.lost_max_ip_s2c)}-byte segments were sent again and again "
                    f"and never acknowledged, while {int(flow.largest_delivered_s2c)}-byte ones were"
                    if flow.largest_delivered_s2c
                    else f"the server's {int(flow.lost_max_ip_s2c)}-byte segments were sent again and again "
                    "and never acknowledged"
                )
            if bound and said:
                reasons.append(f"the path carries at most {path.value} bytes ({said})")
            if (
                flow.client_hello_len > 0
                and not flow.server_hello
                and flow.bytes_s2c == 0
                and flow.pkts_s2c > 1
            ):
                # a TLS server answers a ClientHello at once with kilobytes (ServerHello, certificates); it
                # acknowledged the hello, so it is alive and the small packets pass: its flight was lost
                reasons.append(
                    "the server acknowledged the ClientHello but not one byte of its TLS handshake "
                    "flight arrived"
                )
            twin = _host_twin(ctx, role, flow)
            if twin is not None and twin["max_ip_len_s2c"] >= flow.server_full:
                reasons.append(
                    f"the {ctx.far_role} capture shows the server's {int(twin['max_ip_len_s2c'])}-byte packets, "
                    "the container never got them"
                )
            if not reasons:
                continue  # a stall without size evidence: S001/T001 describe it, the verdict stays open
            p = ctx.conn_packets(role, int(flow.conn), ["frame", "dir", "payload_len", "ip_len"])
            s2c = p[p["dir"] == 1]
            # what got through: acknowledged data, and the packets without data (the handshake completed)
            bare = s2c.loc[s2c["payload_len"] == 0, "ip_len"]
            largest = max(int(flow.largest_delivered_s2c), int(bare.max()) if len(bare) else 0)
            yield Hit(
                {
                    "service": service(flow),
                    "full": int(flow.server_full),
                    "role": _receiver(ctx, role),
                    "largest": largest,
                    **_clamp(path, int(flow.hdr)),
                },
                capture=role,
                conn=int(flow.conn),
                frames=first_frames(s2c["frame"]),
                wireshark_filter=flow_filter(flow),
                evidence={
                    "mss_client": int(flow.mss_client),
                    "mss_at_server": int(flow.mss_at_server),
                    "mss_server": int(flow.mss_server),
                    "server_full": int(flow.server_full),
                    "largest_delivered": largest,
                    "stall_s": round(float(flow.stalled_s), 3),
                    "because": reasons,
                    "where": _where_lost(ctx, role, flow, "s2c"),
                    "max_sack_hole": int(flow.max_sack_hole_c2s),
                },
            )


@rule(
    code="B002",
    name="pmtud-blackhole-upload",
    severity=Severity.ERROR,
    message="{service}: PMTUD black hole on upload - the client's {full}-byte packets are sent and re-sent but never "
    "acknowledged; lost {where}",
    fix="Clamp the MSS {fix_mss} on the docker host (it rewrites the server's SYN-ACK too), or set the "
    "container MTU {path}.",
    why="The same RFC 2923 failure with the container as the sender: its full-size segments die at a smaller-MTU "
    "hop and the ICMP that would tell it never arrives.",
    example={
        "service": "api.example (198.18.0.10:80)",
        "full": 1500,
        "where": "after the host's uplink, on the path",
        "fix_mss": "below 1460 (the path does not carry 1500-byte packets; measure it first with ping -M do -s SIZE)",
        "path": "below 1500",
    },
    references=("RFC 2923", "RFC 1191", "RFC 8201", "RFC 4821"),
    implies=Verdict.MTU_BLACKHOLE,
)
def pmtud_blackhole_upload(ctx: Context):
    for role in ctx.container_roles:
        f = f_all = ctx.flows(role)
        cand = f[
            f["handshake_ok"]
            & (f["client_full"] > 0)
            & f["full_sent_c2s"]
            & ~f["full_delivered_c2s"]
            & (f["retrans_c2s"] >= 2)
            & (f["stalled_s"] >= ctx.th.stall_s)
        ]
        for flow in records(cand):
            twin = _host_twin(ctx, role, flow)
            path = ctx.path.get(int(flow.ipv))
            reasons = []
            if twin is not None and twin["max_ip_len_c2s"] < flow.client_full:
                reasons.append(
                    f"the {ctx.far_role} capture never shows them (largest there: {int(twin['max_ip_len_c2s'])} bytes)"
                )
            if flow.c2s_holes:
                reasons.append("the server's ACKs show holes in the client's data")
            if (
                flow.acked_c2s > 0
                and flow.max_payload_c2s_before_idle + flow.hdr < flow.client_full
                or (0 < flow.acked_c2s < flow.client_full - flow.hdr)
            ):
                # smaller data got through and was acknowledged; the full-size segments after it never were
                reasons.append(
                    f"the server acknowledged the client's first {int(flow.acked_c2s)} bytes but none "
                    "of the full-size segments after them"
                )
            said = cited_for(path, flow.server_ip) if path is not None else ""  # no other server's packets
            if said and path.value < flow.client_full:
                reasons.append(f"the path carries at most {path.value} bytes ({said})")
            # the other connections to the same server: were their client packets acknowledged, and how big?
            done = f_all[
                (f_all["server_ip"] == flow.server_ip)
                & (f_all["conn"] != flow.conn)
                & (f_all["sent_c2s"] > 0)
                & (f_all["acked_c2s"] >= f_all["sent_c2s"])
            ]
            if len(done) and done["largest_delivered_c2s"].max() >= flow.client_full:
                continue  # full-size packets to this server do get through: not a size problem
            if len(done):
                reasons.append(
                    f"other connections to {flow.server_ip} got their smaller packets (up to "
                    f"{int(done['largest_delivered_c2s'].max())} bytes) acknowledged"
                )
            icmp = ctx.captures[role].icmp
            if not reasons or (icmp["quoted_sport"] == flow.client_port).any():
                continue
            p = ctx.conn_packets(role, int(flow.conn), ["frame", "dir", "retrans", "ip_len"])
            lost = p[(p["dir"] == 0) & p["retrans"] & (p["ip_len"] >= flow.client_full)]
            yield Hit(
                {
                    "service": service(flow),
                    "full": int(flow.client_full),
                    "where": _where_lost(ctx, role, flow, "c2s"),
                    **_clamp(path, int(flow.hdr)),
                },
                capture=role,
                conn=int(flow.conn),
                frames=first_frames(lost["frame"]),
                wireshark_filter=flow_filter(flow),
                evidence={
                    "client_full": int(flow.client_full),
                    "retrans_c2s": int(flow.retrans_c2s),
                    "because": reasons,
                },
            )


@rule(
    code="B003",
    name="blackhole-recovered-by-probing",
    severity=Severity.WARNING,
    message="{service}: stalled {stall:.1f} s, then the server continued with {after}-byte segments instead of "
    "{full}-byte ones - packetization-layer PMTU probing got around a black hole",
    fix="It works, slowly: clamp the MSS {fix_mss} so no connection has to stall first.",
    why="RFC 4821 / Linux tcp_mtu_probing: a sender that sees repeated timeouts retries with smaller segments; "
    "the stall followed by smaller segments is the fingerprint of a black hole it worked around.",
    example={
        "service": "api.example (198.18.0.10:443)",
        "stall": 3.1,
        "after": 1395,
        "full": 1460,
        "fix_mss": "to 1410",
    },
    references=("RFC 4821", "RFC 2923", "https://docs.kernel.org/networking/ip-sysctl.html"),
    implies=Verdict.MTU_BLACKHOLE_RECOVERED,
)
def blackhole_recovered_by_probing(ctx: Context):
    for role in ctx.captures:
        f = ctx.judged(role)
        cand = f[
            f["handshake_ok"]
            & (f["server_full"] > 0)
            & (f["stalled_s"] >= ctx.th.stall_s)
            & f["resumed_smaller"]
            & ~f["full_delivered_s2c"]
        ]
        for flow in records(cand):
            p = ctx.conn_packets(role, int(flow.conn), ["frame", "ts", "dir", "payload_len"])
            after = p[
                (p["dir"] == 1) & (p["ts"] >= flow.idle_start_ts + flow.stalled_s) & (p["payload_len"] > 0)
            ]
            path = ctx.path.get(int(flow.ipv))
            yield Hit(
                {
                    "service": service(flow),
                    "stall": float(flow.stalled_s),
                    "after": int(flow.max_payload_s2c_after_idle),
                    "full": int(flow.server_full - flow.hdr),
                    "fix_mss": _clamp(path, int(flow.hdr))["fix_mss"],
                },
                capture=role,
                conn=int(flow.conn),
                frames=first_frames(after["frame"]),
                wireshark_filter=flow_filter(flow),
                evidence={
                    "stall_s": round(float(flow.stalled_s), 3),
                    "payload_after": int(flow.max_payload_s2c_after_idle),
                },
            )
