"""X: one connection seen from both sides of the NAT - where did the packets die?"""

from __future__ import annotations

import numpy as np

from ...evidence import first_frames, flow_filter, service, services
from ...results import Severity
from .. import rowkeys
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
    hosts = ctx.pairs["host_conn"].tolist()
    stalled, resent, s2c_holes, c2s_holes = (
        ctx.flow_values(roles, conns, name)
        for name in ("stalled_s", "retransmissions", "s2c_holes", "c2s_holes")
    )
    # a clean connection loses nothing between the two capture points
    troubled = [
        i
        for i in range(len(roles))
        if stalled[i] >= ctx.th.stall_s or resent[i] > 0 or s2c_holes[i] or c2s_holes[i]
    ]
    only = _one_side_only(ctx, troubled, roles, conns, hosts)
    hit = sorted({i for i, _ in only})
    named = dict(
        zip(
            hit,
            services(
                *(ctx.flow_values([roles[i] for i in hit], [conns[i] for i in hit], name) for name in SERVICE)
            ),
            strict=True,
        )
    )
    for i in troubled:
        for d, what, seen in ((1, "server", far), (0, "client", roles[i])):
            src, rows = only.get((i, d), (None, ()))
            if not len(rows):
                continue
            between = (
                "inside the docker host (bridge, veth)"
                if far == "host"
                else f"on the path between the {roles[i]} and the {far}"
            )
            yield Hit(
                {
                    "service": named[i],
                    "count": len(rows),
                    "what": what,
                    "seen": seen,
                    "size": int(src["ip_len"][rows].max()),
                    "between": between,
                },
                capture=seen,
                conn=int(hosts[i] if seen == far else conns[i]),
                frames=first_frames(src["frame"][rows]),
            )


ONE_SIDE_COLUMNS = ("dir", "payload_len", "rel_seq", "ip_len", "frame", "ts")
SERVICE = ("name", "server_ip", "server_port")  # the flow columns evidence.services() names a connection by
ONE_SIDE_KEY = ("pair", "rel_seq", "payload_len")  # a segment of one direction of one matched connection


def _one_side_only(ctx: Context, troubled: list[int], roles: list, conns: list, hosts: list) -> dict:
    """(pair position, direction) -> (the sending side's columns, its rows of that direction's data segments
    the other capture point lacks, in capture order). All troubled pairs at once: per connection, Python
    sets of segments took 0.4 s on a pair of 1M-packet captures."""
    out: dict[tuple[int, int], tuple[dict, np.ndarray]] = {}
    offset = ctx.clock_offset(ctx.far_role)  # the far capture's clock minus the container captures'
    for role in dict.fromkeys(roles[i] for i in troubled):  # one container capture at a time, in order
        mine = [i for i in troubled if roles[i] == role]
        near = _data_segments(ctx, role, [conns[i] for i in mine])
        away = _data_segments(ctx, ctx.far_role, [hosts[i] for i in mine])
        # how long each capture ran, as far as the two show it (on the other capture's clock)
        near_ran, far_ran = _running(ctx, role, [conns[i] for i in mine], [hosts[i] for i in mine], offset)
        for d, src, dst, shift, (start, end) in (
            (1, away, near, -offset, near_ran),
            (0, near, away, offset, far_ran),
        ):
            sent, heard = _of_direction(src, d), _of_direction(dst, d)
            rows = np.flatnonzero(src["dir"] == d)[~rowkeys.rows_in(sent, heard, ONE_SIDE_KEY)]
            # only while the other capture ran: two captures are rarely started and stopped together, and
            # what one saw before the other started or after it stopped was not lost between them
            when = src["ts"][rows] + shift
            rows = rows[(when >= start) & (when <= end)]
            rows = rows[np.argsort(src["pair"][rows], kind="stable")]  # by pair, capture order inside
            pair = src["pair"][rows]
            bounds = np.flatnonzero(np.r_[True, pair[1:] != pair[:-1], True]) if len(rows) else [0]
            for a, b in zip(bounds[:-1], bounds[1:], strict=True):
                out[(mine[int(pair[a])], d)] = (src, rows[a:b])
    return out


# any packet of one direction of one matched connection, as both capture points see it
RUN_KEY = ("pair", "dir", "rel_seq", "rel_ack", "payload_len", "tcp_flags")


def _running(ctx: Context, role: str, conns: list[int], hosts: list[int], offset: float) -> tuple:
    """(first, last) time each of the two captures demonstrably ran, on its own clock: from its first packet;
    until its last packet if it demonstrably stopped, else without end.

    A capture that stopped is told by the other: it holds packets that crossed this capture's point first
    (sent from this side: the container's toward the server, the far side's toward the client) after this
    capture's last packet, and this capture lacks them. A capture that only fell silent, as the far side of
    a black hole does, lacks nothing sent from its own side, and counts as running until the end. Of one
    that stopped, the last stall's length (`stall_s`) before its last packet is left out too: what the other
    point saw then may still have been on its way."""
    margin = ctx.th.stall_s
    spans = [ctx.span(role), ctx.span(ctx.far_role)]
    near = _packets(ctx, role, conns)
    away = _packets(ctx, ctx.far_role, hosts)
    out = []
    # (this capture, the other, the direction that crosses this capture's point first, to the other's clock)
    for (first, last), mine, other, d, shift in (
        (spans[0], near, away, 0, -offset),
        (spans[1], away, near, 1, offset),
    ):
        theirs = _of_direction(other, d)
        lacking = ~rowkeys.rows_in(theirs, _of_direction(mine, d), RUN_KEY)
        stopped = bool((theirs["ts"][lacking] + shift > last).any())
        # a packet the other point saw in the last moments may not have reached this one before it stopped
        out.append((first, last - margin if stopped else np.inf))
    return out[0], out[1]


def _packets(ctx: Context, role: str, conns: list[int]) -> dict[str, np.ndarray]:
    """Columns of every packet of these connections of a capture (not interface copies), with `pair`."""
    packets = ctx.captures[role].packets
    rows, pair = rowkeys.connection_rows(packets["conn"].to_numpy(), conns, ~packets["dup_copy"].to_numpy())
    out = {name: packets[name].to_numpy()[rows] for name in (*RUN_KEY[1:], "ts")}
    out["pair"] = pair
    return out


def _data_segments(ctx: Context, role: str, conns: list[int]) -> dict[str, np.ndarray]:
    """Columns of the data segments of these connections of a capture (interface copies too), in capture
    order, with `pair`: the connection's position in `conns`."""
    packets = ctx.captures[role].packets
    rows, pair = rowkeys.connection_rows(
        packets["conn"].to_numpy(), conns, packets["payload_len"].to_numpy() > 0
    )
    out = {name: packets[name].to_numpy()[rows] for name in ONE_SIDE_COLUMNS}
    out["pair"] = pair
    return out


def _of_direction(segments: dict[str, np.ndarray], d: int) -> dict[str, np.ndarray]:
    keep = segments["dir"] == d
    return {name: values[keep] for name, values in segments.items()}


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
