"""Where on the path each capture was taken: near the client, near the server, or in between.

What a capture proves depends on where it was taken (a sender's capture shows what was sent, not what
arrived), so the diagnosis states each capture's vantage point with its reasons, checks the roles given on
the command line against it, and places captures given without a role. Signals:

- TTL / hop limit: a packet leaves its sender with a standard initial value (64, 128 or 255; 32 on a few
  old stacks) and loses one per router, so a side whose packets carry the initial value is on this machine
  (or in its network namespace) and a decremented one is that many hops away (RFC 791, RFC 8200);
- the handshake timing split: at the client, SYN to SYN-ACK takes the whole round trip and the client's
  ACK follows at once; at the server it is the other way round; in between, both halves take time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..ingest.capture import Capture

POSITIONS = ("client", "server", "middle", "unknown")
WHERE = {
    "client": "near the client",
    "middle": "between client and server",
    "server": "at the server",
    "unknown": "at a point its packets do not tell",
}
INITIAL_TTLS = np.array([32, 64, 128, 255])
SPLIT_CLEAR = 0.8  # a share of the handshake time this large on one side says which end is here
MIN_RTT_S = 0.002  # below this the timestamps' jitter decides the split, not the path


@dataclass(frozen=True)
class Vantage:
    """A capture's place on the path, the reasons, and the hop counts behind them."""

    position: str  # client, server, middle or unknown
    reasons: tuple[str, ...] = ()
    client_hops: int | None = None  # hops from the clients to the capture point (most common value)
    server_hops: int | None = None
    forwarded: int = 0  # connections neither of whose ends is on the capturing machine

    @property
    def where(self) -> str:
        """The position in words, for sentences: "taken near the client"."""
        return WHERE[self.position]

    def to_json(self) -> dict:
        return {
            "position": self.position,
            "reasons": list(self.reasons),
            "client_hops": self.client_hops,
            "server_hops": self.server_hops,
        }


def hops(ttl: np.ndarray) -> np.ndarray:
    """Routers crossed since the sender, assuming the smallest standard initial TTL not below `ttl`."""
    ttl = np.asarray(ttl, dtype=np.int64)
    initial = INITIAL_TTLS[np.minimum(np.searchsorted(INITIAL_TTLS, ttl), len(INITIAL_TTLS) - 1)]
    return initial - ttl


def side_hops(cap: Capture) -> pd.DataFrame:
    """Per connection: hops from the client and from the server (the nearest copy each way), -1 unknown."""
    n = len(cap.flows)
    out = pd.DataFrame({"client_hops": np.full(n, -1), "server_hops": np.full(n, -1)})
    p = cap.packets
    if not n or not len(p):
        return out
    conn, dirn, ttl = p["conn"].to_numpy(), p["dir"].to_numpy(), p["ttl"].to_numpy().astype(np.int64)
    keep = np.flatnonzero((conn >= 0) & (dirn >= 0) & ~p["dup_copy"].to_numpy() & (ttl > 0))
    top = np.zeros(2 * n, dtype=np.int64)  # the largest TTL per (connection, direction): the nearest copy
    np.maximum.at(top, conn[keep].astype(np.int64) * 2 + dirn[keep], ttl[keep])
    for d, col in ((0, "client_hops"), (1, "server_hops")):
        seen = top[d::2] > 0
        out.loc[seen, col] = hops(top[d::2][seen])
    return out


def infer(cap: Capture) -> Vantage:
    """The capture's vantage point, from every connection it holds."""
    f = cap.flows
    if not len(f):
        return Vantage("unknown", ("the capture holds no TCP connection",))
    h = side_hops(cap)
    ch, sh = h["client_hops"].to_numpy(), h["server_hops"].to_numpy()
    known = (ch >= 0) & (sh >= 0)
    at_client = known & (ch == 0) & (sh > 0)
    at_server = known & (sh == 0) & (ch > 0)
    between = known & (ch > 0) & (sh > 0)
    reasons = []
    counts = {"client": int(at_client.sum()), "server": int(at_server.sum()), "middle": int(between.sum())}
    if counts["client"]:
        reasons.append(
            f"{counts['client']} connection(s) leave from this machine: the client's packets carry "
            f"their initial TTL here, the server's {_mode(sh[at_client])} hop(s) less"
        )
    if counts["server"]:
        reasons.append(
            f"{counts['server']} connection(s) end on this machine: the server's packets carry their "
            f"initial TTL here, the client's {_mode(ch[at_server])} hop(s) less"
        )
    if counts["middle"]:
        reasons.append(
            f"{counts['middle']} connection(s) are forwarded through this point: the client is "
            f"{_mode(ch[between])} hop(s) away, the server {_mode(sh[between])}"
        )
    timing = _handshake_split(cap)
    split = None
    if timing is not None:
        share, first, second = timing
        telling = first + second >= MIN_RTT_S
        split = share if telling else None
        reasons.append(
            f"SYN to SYN-ACK took {first * 1e3:.3g} ms here and SYN-ACK to ACK {second * 1e3:.3g} ms "
            "(median): "
            + (
                "the client's side sees nearly all of the round trip, the server's nearly none"
                if telling
                else "too short a round trip to tell the sides apart"
            )
        )
    # forwarded traffic puts the capture on a router or docker host, whatever its own connections are
    if counts["middle"] and counts["middle"] >= counts["server"]:
        position = "middle"
    elif counts["client"] > counts["server"]:
        position = "client"
    elif counts["server"] > counts["client"]:
        position = "server"
    elif split is not None and split >= SPLIT_CLEAR:
        position = "client"
    elif split is not None and split <= 1 - SPLIT_CLEAR:
        position = "server"
    else:
        position = "unknown"
    pick = {"client": at_client, "server": at_server, "middle": between}.get(position)
    return Vantage(
        position,
        tuple(reasons) or ("no TTL or handshake timing to place it",),
        _mode(ch[pick]) if pick is not None and pick.any() else None,
        _mode(sh[pick]) if pick is not None and pick.any() else None,
        counts["middle"],
    )


def _mode(values: np.ndarray) -> int:
    vals, n = np.unique(values, return_counts=True)
    return int(vals[np.argmax(n)])


def _handshake_split(cap: Capture) -> tuple[float, float, float] | None:
    """Median share of the handshake round trip spent between the SYN and the SYN-ACK at this point, and the
    median times of the two halves (seconds)."""
    f = cap.flows
    syn, synack, rtt = (f[name].to_numpy() for name in ("syn_frame", "synack_frame", "handshake_rtt"))
    both = (syn >= 0) & (synack >= 0) & (rtt > 0)
    if not both.any():
        return None
    p = cap.packets
    frames = p["frame"].to_numpy()
    ts = p["ts"].to_numpy()

    def at(frame: np.ndarray) -> np.ndarray:
        i = np.clip(np.searchsorted(frames, frame), 0, len(frames) - 1)
        return ts[i]

    first = at(synack[both]) - at(syn[both])
    rtt = rtt[both]
    ok = (first >= 0) & (first <= rtt * (1.0 + 1e-6))
    if not ok.any():
        return None
    return (
        float(np.median(first[ok] / rtt[ok])),
        float(np.median(first[ok])),
        float(np.median(rtt[ok] - first[ok])),
    )
