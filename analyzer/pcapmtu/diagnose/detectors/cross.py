"""X: one connection seen from both sides of the NAT - where did the packets die?"""

from __future__ import annotations

from types import SimpleNamespace

from ...evidence import first_frames, flow_filter, service
from ...results import Severity
from ..context import Context, records
from . import Hit, rule


@rule(
    code="X001",
    name="matched-across-nat",
    severity=Severity.INFO,
    message="{matched} of {total} connections in the {role} capture were found in the {far} capture "
    "(matched by {how}); {own} connections there are the {far}'s own",
    fix="Container connections missing from the host capture are listed by X003; if none matched, check that "
    "both captures cover the same time and that the host capture is on the uplink the traffic leaves by.",
    why="MASQUERADE changes the client address and port but never the sequence numbers, so the same connection "
    "is recognised on both sides by its server endpoint and initial sequence number.",
    example={
        "matched": 2,
        "total": 2,
        "role": "container",
        "how": "client initial sequence number",
        "own": 1,
        "far": "host",
    },
    references=("RFC 3022",),
)
def matched_across_nat(ctx: Context):
    if ctx.far is None:
        return
    own = int(ctx.flows(ctx.far_role)["host_own"].sum())
    for role in ctx.container_roles:
        p = ctx.pairs[ctx.pairs["container"] == role]
        how = ", ".join(sorted(set(p["matched_by"]))) or "nothing"
        yield Hit(
            {
                "matched": len(p),
                "total": len(ctx.flows(role)),
                "role": role,
                "how": how,
                "own": own,
                "far": ctx.far_role,
            },
            capture=role,
            evidence={"nat_clients": sorted(set(p["nat_client"]))[:10]},
        )


@rule(
    code="X002",
    name="seen-on-one-side",
    severity=Severity.WARNING,
    message="{service}: {count} {what} segments were captured on the {seen} side only (largest {size} bytes) - "
    "they were lost between the two capture points",
    fix="The loss is {between}: check the MTUs of the links there and any firewall that drops ICMP.",
    why="Both captures of one connection should hold the same segments (NAT changes addresses, not sequence "
    "numbers); segments present on one side only died between the two interfaces.",
    example={
        "service": "api.example (198.18.0.10:443)",
        "count": 12,
        "what": "server",
        "seen": "server",
        "size": 1500,
        "between": "on the path between the container and the server",
    },
    references=("RFC 2923",),
)
def seen_on_one_side(ctx: Context):
    if ctx.far is None:
        return
    far = ctx.far_role
    for row in records(ctx.pairs):
        flow = ctx.flow(row.container, int(row.container_conn))
        trouble = flow["stalled_s"] >= ctx.th.stall_s or flow["retransmissions"] > 0
        if not (trouble or flow["s2c_holes"] or flow["c2s_holes"]):
            continue  # a clean connection loses nothing between the two capture points
        c = ctx.conn_packets(row.container, int(row.container_conn))
        h = ctx.conn_packets(far, int(row.host_conn))
        for d, what, src, dst, seen in ((1, "server", h, c, far), (0, "client", c, h, row.container)):
            a = src[(src["dir"] == d) & (src["payload_len"] > 0)]
            b = dst[(dst["dir"] == d) & (dst["payload_len"] > 0)]
            keys = set(zip(b["rel_seq"], b["payload_len"], strict=True))
            only = a[[(s, n) not in keys for s, n in zip(a["rel_seq"], a["payload_len"], strict=True)]]
            if len(only):
                role = seen
                between = (
                    "inside the docker host (bridge, veth)"
                    if far == "host"
                    else f"on the path between the {row.container} and the {far}"
                )
                yield Hit(
                    {
                        "service": service(SimpleNamespace(**flow[["name", "server_ip", "server_port"]])),
                        "count": len(only),
                        "what": what,
                        "seen": seen,
                        "size": int(only["ip_len"].max()),
                        "between": between,
                    },
                    capture=role,
                    conn=int(row.host_conn if seen == far else row.container_conn),
                    frames=first_frames(only["frame"]),
                )


@rule(
    code="X003",
    name="missing-from-host",
    severity=Severity.INFO,
    message="{count} connections of the {role} capture are not in the {far} capture ({examples})",
    fix="Start both captures before reproducing, and capture on the interface the traffic leaves by.",
    why="A connection the container made that never appears on the host's uplink either left by another "
    "interface or happened outside the host capture's time window.",
    example={
        "count": 2,
        "role": "container",
        "far": "host",
        "examples": "api.example (198.18.0.10:443), 198.18.0.12:80",
    },
    references=("RFC 3022",),
)
def missing_from_host(ctx: Context):
    if ctx.far is None:
        return
    for role in ctx.container_roles:
        f = ctx.flows(role)
        lone = f[f["twin_conn"] < 0]
        if len(lone):
            examples = ", ".join(service(x) for x in records(lone.head(3)))
            yield Hit(
                {"count": len(lone), "role": role, "examples": examples, "far": ctx.far_role},
                capture=role,
                frames=first_frames(lone["first_frame"]),
                wireshark_filter=" || ".join(f"({flow_filter(x)})" for x in records(lone.head(3))),
            )
