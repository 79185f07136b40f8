"""Small helpers shared by detectors: service labels, Wireshark filters, frames of a connection."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..context import Context


def endpoint(ip, port) -> str:
    """address:port, with IPv6 addresses in brackets."""
    return f"[{ip}]:{port}" if ":" in str(ip) else f"{ip}:{port}"


def service(flow) -> str:
    """How a person names the connection: 'api.example (198.18.0.10:443)'."""
    where = endpoint(flow.server_ip, flow.server_port)
    return f"{flow.name} ({where})" if flow.name else where


def flow_filter(flow) -> str:
    """Wireshark display filter for one connection (both directions)."""
    ip = "ipv6" if ":" in str(flow.server_ip) else "ip"
    return (
        f"{ip}.addr=={flow.client_ip} && tcp.port=={flow.client_port} && "
        f"{ip}.addr=={flow.server_ip} && tcp.port=={flow.server_port}"
    )


def conn_packets(ctx: Context, role: str, conn: int, columns: list[str] | None = None) -> pd.DataFrame:
    """The packets of one connection (cached index per capture). Naming the `columns` a caller reads
    makes this several times cheaper on a wide table, for rules that look at many connections."""
    cache = ctx.__dict__.setdefault("_conn_index", {})
    if role not in cache:
        conns = ctx.captures[role].packets["conn"].to_numpy()
        order = np.argsort(conns, kind="stable")
        cache[role] = (order, conns[order])
    order, sorted_conns = cache[role]
    lo, hi = np.searchsorted(sorted_conns, [conn, conn + 1])
    packets = ctx.captures[role].packets
    return (packets if columns is None else packets[columns]).iloc[order[lo:hi]]


def first_frames(frames, limit: int = 12) -> tuple[int, ...]:
    return tuple(int(x) for x in list(frames)[:limit])
