"""X: one connection seen from both sides of the NAT - where did the packets die?"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

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
    roles, conns = ctx.pairs["container"].tolist(), ctx.pairs["container_conn"].tolist()
    stalled, resent, s2c_holes, c2s_holes = (
        ctx.flow_values(roles, conns, name)
        for name in ("stalled_s", "retransmissions", "s2c_holes", "c2s_holes")
    )
    # numpy columns and each connection's rows, not a DataFrame per connection: a pair of big captures has
    # thousands of troubled connections
    columns = {
        role: {name: ctx.captures[role].packets[name].to_numpy() for name in ONE_SIDE_COLUMNS}
        for role in {far, *roles}
    }
    for i, row in enumerate(records(ctx.pairs)):
        trouble = stalled[i] >= ctx.th.stall_s or resent[i] > 0
        if not (trouble or s2c_holes[i] or c2s_holes[i]):
            continue  # a clean connection loses nothing between the two capture points
        flow = ctx.flow(row.container, int(row.container_conn))
        c = (row.container, ctx.conn_rows(row.container, int(row.container_conn)))
        h = (far, ctx.conn_rows(far, int(row.host_conn)))
        for d, what, (src, src_rows), (dst, dst_rows), seen in (
            (1, "server", h, c, far),
            (0, "client", c, h, row.container),
        ):
            a, b = _data_rows(columns[src], src_rows, d), _data_rows(columns[dst], dst_rows, d)
            keys = set(
                zip(columns[dst]["rel_seq"][b].tolist(), columns[dst]["payload_len"][b].tolist(), strict=True)
            )
            sent = zip(
                columns[src]["rel_seq"][a].tolist(), columns[src]["payload_len"][a].tolist(), strict=True
            )
            only = a[[(s, n) not in keys for s, n in sent]]
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
                        "size": int(columns[src]["ip_len"][only].max()),
                        "between": between,
                    },
                    capture=role,
                    conn=int(row.host_conn if seen == far else row.container_conn),
                    frames=first_frames(columns[src]["frame"][only]),
                )


ONE_SIDE_COLUMNS = ("dir", "payload_len", "rel_seq", "ip_len", "frame")


def _data_rows(columns: dict[str, np.ndarray], rows: np.ndarray, d: int) -> np.ndarray:
    """The data segments of direction `d` among one connection's `rows`, in capture order."""
    return rows[(columns["dir"][rows] == d) & (columns["payload_len"][rows] > 0)]


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
