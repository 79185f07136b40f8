"""Stage 4: the same connection seen in two captures, across NAT.

Docker's MASQUERADE rewrites the client address (and maybe the port) but never the TCP sequence numbers,
so a container connection and its host-side twin share the server endpoint and the client's initial
sequence number, and start at about the same time. Without the SYN, the server's initial sequence number
(SYN-ACK) matches instead; without either, the first sequence numbers seen. Host connections left unmatched are the host's own traffic.
"""

from __future__ import annotations

import pandas as pd

from .capture import Capture

PAIR_COLUMNS = ["container", "container_conn", "host_conn", "matched_by", "nat_client", "host_copies"]


def match_flows(
    host: Capture, container: Capture, role: str = "container", window_s: float = 5.0
) -> pd.DataFrame:
    """One row per container connection found in the host capture."""
    h, c = host.flows, container.flows
    found = []
    # strongest first: the SYN, the SYN-ACK, then (captures that start mid-connection) the first sequence
    # number each side was seen with, which matches when both captures started at the same moment
    for key in ("isn_client", "isn_server", "first_seq_s2c", "first_seq_c2s"):
        left = c[c[key] >= 0][["conn", "server_ip", "server_port", key, "first_ts"]]
        right = h[h[key] >= 0][
            ["conn", "server_ip", "server_port", key, "first_ts", "client_ip", "client_port"]
        ]
        hit = left.merge(right, on=["server_ip", "server_port", key], suffixes=("_c", "_h"))
        hit = hit[(hit["first_ts_c"] - hit["first_ts_h"]).abs() <= window_s]
        how = {"isn_client": "client initial sequence number", "isn_server": "server initial sequence number",
               "first_seq_s2c": "server sequence number (no handshake captured)",
               "first_seq_c2s": "client sequence number (no handshake captured)"}[key]  # fmt: skip
        hit = hit.assign(matched_by=how)
        found.append(hit)
    pairs = pd.concat(found, ignore_index=True)
    if not len(pairs):
        return pd.DataFrame(columns=PAIR_COLUMNS)
    # `tcpdump -i any` on the host sees a container connection twice: before NAT (bridge, veth) and after
    # it (uplink). Every copy is "not the host's own"; the twin is the NATed one, as it left the host.
    container_ips = c.set_index("conn")["client_ip"]
    pairs["nated"] = pairs["client_ip"].to_numpy() != container_ips.reindex(pairs["conn_c"]).to_numpy()
    pairs = pairs.sort_values(["conn_c", "nated"], ascending=[True, False], kind="stable")
    also = pairs.groupby("conn_c")["conn_h"].agg(lambda s: sorted({int(x) for x in s}))
    pairs = pairs.drop_duplicates("conn_c").drop_duplicates("conn_h")
    pairs["host_copies"] = pairs["conn_c"].map(also)
    pairs["nat_client"] = pairs["client_ip"].astype(str) + ":" + pairs["client_port"].astype(str)
    out = pairs.rename(columns={"conn_c": "container_conn", "conn_h": "host_conn"})
    out.insert(0, "container", role)
    return out[PAIR_COLUMNS].sort_values("container_conn").reset_index(drop=True)
