"""What every detector sees: the captures by role, the NAT pairs, the path evidence, thresholds, facts.

`Context.flows(role)` is the flows table of one capture with the columns the detectors share
(header size, the MSS the server really received, the size of a full segment each way, ...), derived
once here so detectors stay short and agree with each other.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cached_property, lru_cache

import numpy as np
import pandas as pd

from ..config import KnownFacts, Thresholds
from ..ingest.capture import Capture
from ..results import PathMTU
from .delivery import DELIVERY_COLUMNS, delivery, never_acknowledged, segment_fate
from .pairing import PAIR_COLUMNS, match_flows
from .turns import TURN_COLUMNS, turns
from .vantage import Vantage

FAR_ROLES = ("host", "server")


def records(frame: pd.DataFrame) -> Iterator[tuple]:
    """`frame.itertuples()`, the same named tuples with the same Python values, ~25x faster on the wide
    flows table (141 columns): pandas builds each row's columns through `iloc`, this takes each column's
    array once (pandas' own `_get_column_array`, no Series made; `iloc` where a pandas lacks it)."""
    column = getattr(frame, "_get_column_array", None) or (lambda i: frame.iloc[:, i])
    columns = [frame.index.tolist(), *(column(i).tolist() for i in range(frame.shape[1]))]
    return map(_row_type(tuple(frame.columns))._make, zip(*columns, strict=True))


@lru_cache(maxsize=64)
def _row_type(columns: tuple[str, ...]) -> type:
    return namedtuple("Pandas", ["Index", *columns], rename=True)  # the names itertuples gives


@dataclass
class Context:
    captures: dict[str, Capture]  # role -> capture: "container", "container2", ..., "host", "server"
    facts: KnownFacts = field(default_factory=KnownFacts)
    th: Thresholds = field(default_factory=Thresholds)
    path: dict[int, PathMTU] = field(default_factory=dict)  # filled by path.infer before detectors run
    vantage: dict[str, Vantage] = field(default_factory=dict)  # role -> where it was taken
    role_changes: list[str] = field(default_factory=list)  # roles given wrongly and corrected, in words

    @property
    def far_role(self) -> str | None:
        """The capture the client-side captures are paired with: the docker host's, else the server's."""
        if len(self.captures) < 2:
            return None
        return next((r for r in FAR_ROLES if r in self.captures), None)

    @property
    def far(self) -> Capture | None:
        return self.captures[self.far_role] if self.far_role else None

    @property
    def container_roles(self) -> list[str]:
        """The captures nearest the clients, paired with the far one."""
        return [r for r in self.captures if r != self.far_role and r not in self.extra_roles]

    @property
    def extra_roles(self) -> list[str]:
        """A server capture beside the docker host's: not paired; its copies of connections other captures
        hold are judged there, so it contributes only connections no other capture has."""
        return ["server"] if self.far_role == "host" and "server" in self.captures else []

    def conn_packets(self, role: str, conn: int, columns: list[str] | None = None) -> pd.DataFrame:
        """The packets of one connection (an index per capture, built once). Naming the `columns` a caller
        reads makes this several times cheaper on a wide table, for rules that look at many connections."""
        packets = self.captures[role].packets
        return (packets if columns is None else packets[columns]).iloc[self.conn_rows(role, conn)]

    def conn_rows(self, role: str, conn: int) -> np.ndarray:
        """The positions of one connection's packets in its capture's packets table, in capture order: for a
        rule that reads a few numpy columns of many connections (no DataFrame per connection)."""
        cache = self.__dict__.setdefault("_conn_index", {})
        if role not in cache:
            conns = self.captures[role].packets["conn"].to_numpy()
            order = np.argsort(conns, kind="stable")
            # int64, as the searched-for ids are: numpy would otherwise convert the whole column on every search
            cache[role] = (order, conns[order].astype(np.int64))
        order, sorted_conns = cache[role]
        lo, hi = np.searchsorted(sorted_conns, [conn, conn + 1])
        return order[lo:hi]

    def span(self, role: str) -> tuple[float, float]:
        """The first and last packet times of a capture, on its own clock ((inf, -inf) when it has none)."""
        cache = self.__dict__.setdefault("_spans", {})
        if role not in cache:
            ts = self.captures[role].packets["ts"].to_numpy()
            cache[role] = (float(ts.min()), float(ts.max())) if len(ts) else (np.inf, -np.inf)
        return cache[role]

    def clock_offset(self, role: str) -> float:
        """This capture's clock minus the client-side captures' clock, seconds (0 where not measured)."""
        if role != self.far_role or not len(self.pairs):
            return 0.0
        offsets = self.pairs["clock_offset_s"].dropna()
        return float(offsets.median()) if len(offsets) else 0.0

    @cached_property
    def pairs(self) -> pd.DataFrame:
        """Container connection <-> far-capture connection, for every container capture."""
        if self.far is None:
            return pd.DataFrame(columns=PAIR_COLUMNS)
        parts = [
            match_flows(self.far, self.captures[r], r, self.th.pairing_window_s) for r in self.container_roles
        ]
        return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=PAIR_COLUMNS)

    def twin(self, role: str, conn: int) -> tuple[str, int] | None:
        """The same connection in the other capture: (role, conn)."""
        return self._twins.get((role, int(conn)))

    @cached_property
    def _twins(self) -> dict[tuple[str, int], tuple[str, int]]:
        out: dict[tuple[str, int], tuple[str, int]] = {}
        far = self.far_role
        pairs = self.pairs
        for role, c, h in zip(
            pairs["container"].tolist(),
            pairs["container_conn"].tolist(),
            pairs["host_conn"].tolist(),
            strict=True,
        ):
            out[(role, int(c))] = (far, int(h))
            out.setdefault((far, int(h)), (role, int(c)))
        return out

    def judged(self, role: str) -> pd.DataFrame:
        """The connections a detector judges in a capture: the far capture's copies of container connections
        are judged once, on the container's side, so the far capture contributes only its own."""
        cache = self.__dict__.setdefault("_judged", {})  # a row selection copies all ~170 columns: once
        if role not in cache:
            f = self.flows(role)
            if role in self.extra_roles:
                cache[role] = f[~self._seen_elsewhere(role)]
            elif role == self.far_role:
                cache[role] = f[f["host_own"] | f["judged_here"]]
            else:  # no row selection (a copy of every column) where no view was cut, the common case
                cache[role] = f[~f["view_cut"]] if f["view_cut"].any() else f
        return cache[role]

    def _seen_elsewhere(self, role: str) -> pd.Series:
        """Connections of `role` that another capture holds too (same server endpoint and client ISN)."""
        f = self.flows(role)
        others = [self.flows(r) for r in self.captures if r != role]
        keys = {
            k for o in others for k in zip(o["server_ip"], o["server_port"], o["isn_client"], strict=True)
        }
        mine = zip(f["server_ip"], f["server_port"], f["isn_client"], strict=True)
        return pd.Series([k[2] >= 0 and k in keys for k in mine], index=f.index, dtype=bool)

    def flow(self, role: str, conn: int) -> pd.Series:
        """One connection's row (flows are numbered 0..n-1 in order, so this is a position lookup)."""
        row = self.flows(role).iloc[int(conn)]
        assert row["conn"] == conn
        return row

    def flow_values(self, roles: Iterable[str], conns: Iterable[int], column: str) -> list:
        """`flow(role, conn)[column]` of each (role, conn), read from the column: a whole row of ~170 columns
        per connection costs ~0.4 ms, which a verdict that cites a hundred connections pays a hundred times."""
        arrays: dict[str, np.ndarray] = {}
        out = []
        for role, conn in zip(roles, conns, strict=True):
            if role not in arrays:
                arrays[role] = self.flows(role)[column].to_numpy()
            out.append(arrays[role][int(conn)])
        return out

    def fate(self, role: str) -> np.ndarray:
        """Per packet of a capture: 1 delivered, -1 lost, 0 unresolved or no data (delivery.py)."""
        cache = self.__dict__.setdefault("_fates", {})
        if role not in cache:
            cap = self.captures[role]
            cache[role] = segment_fate(cap.packets, cap.sack)
        return cache[role]

    def flows(self, role: str) -> pd.DataFrame:
        return self._flows[role]

    @cached_property
    def _flows(self) -> dict[str, pd.DataFrame]:
        out = {role: _derive(cap, self.fate(role)) for role, cap in self.captures.items()}
        for role, cap in self.captures.items():
            out[role]["icmp_reports"] = _icmp_reports(out[role], cap.icmp)
        if self.far_role:
            host = out[self.far_role]
            copies = {c for group in self.pairs["host_copies"] for c in group} if len(self.pairs) else set()
            host["host_own"] = ~host["conn"].isin(copies)
            # what the server really received: the host-side SYN (after any MSS clamp on the host)
            for role in self.container_roles:
                pairs = self.pairs[self.pairs["container"] == role]
                seen = host.set_index("conn")["mss_client"].reindex(pairs["host_conn"]).to_numpy()
                flows = out[role]
                at_server = pd.Series(seen, index=pairs["container_conn"].to_numpy())
                mapped = flows["conn"].map(at_server)
                flows["mss_at_server"] = np.where(
                    mapped.fillna(0) > 0, mapped.fillna(0), flows["mss_client"]
                ).astype(int)
                flows["twin_conn"] = (
                    flows["conn"].map(pairs.set_index("container_conn")["host_conn"]).fillna(-1).astype(int)
                )
                _names_from_twins(flows, host)
                end = self.span(role)[1]
                cut = _cut_short(flows, host, end, self.clock_offset(self.far_role), self.th.stall_s)
                flows["view_cut"] = cut
                host.loc[host["conn"].isin(flows["twin_conn"].to_numpy()[cut]), "judged_here"] = True
        for flows in out.values():  # sizes last: they depend on the MSS the server really received
            _sizes(flows)
        return out


def _cut_short(
    flows: pd.DataFrame, far: pd.DataFrame, end: float, offset: float, stall_s: float
) -> np.ndarray:
    """Per connection of a container capture: whether the capture ended while the connection went on.

    Two captures are rarely stopped at the same moment. When the container's stopped first, its view of a
    connection that was still open ends early: a download that hung later looks healthy there, and only the
    far capture shows the stall. Such a connection (not closed in the container's view, and seen in the far
    capture more than a stall's length after the container capture's last packet `end`, clocks aligned) is judged on
    the far side, where it is whole; otherwise on the container side, as always."""
    twin = flows["twin_conn"].to_numpy()
    paired = twin >= 0
    if not paired.any():
        return np.zeros(len(flows), dtype=bool)
    # flows are numbered 0..n-1 in order (Context.flow): a twin's number is its position
    far_last = np.where(
        paired, far["last_ts"].to_numpy(dtype=float)[np.where(paired, twin, 0)] - offset, -np.inf
    )
    still_open = flows["state"].astype(str).to_numpy() != "closed"
    return paired & still_open & (far_last > end + stall_s)


def _names_from_twins(flows: pd.DataFrame, far: pd.DataFrame) -> None:
    """A connection this capture could not name takes the name the far capture gave its twin (and that name's
    source): a capture cut short per packet (`tcpdump -s 96`) loses the DNS answers and the TLS SNI, not the
    connections, and the far capture point usually saw the same lookup whole."""
    twin = flows["twin_conn"].to_numpy()
    unnamed = np.flatnonzero((twin >= 0) & (flows["name"].to_numpy(dtype=object) == ""))
    if not len(unnamed):
        return
    # flows are numbered 0..n-1 in order (Context.flow): a twin's number is its position
    names = far["name"].to_numpy(dtype=object)[twin[unnamed]]
    sources = far["name_source"].to_numpy(dtype=object)[twin[unnamed]]
    named = np.array([type(n) is str and n != "" for n in names], dtype=bool)
    if named.any():
        rows = flows.index[unnamed[named]]
        flows.loc[rows, "name"] = names[named]
        flows.loc[rows, "name_source"] = sources[named]


def _icmp_reports(flows: pd.DataFrame, icmp: pd.DataFrame) -> np.ndarray:
    """ICMP size reports (frag needed / packet too big) in this capture quoting each connection."""
    size = icmp[icmp["kind"].isin(["frag_needed", "packet_too_big"])]
    if not len(size) or not len(flows):
        return np.zeros(len(flows), dtype=np.int64)
    quoted = size.groupby(["quoted_dst", "quoted_dport", "quoted_sport"]).size()
    keys = pd.MultiIndex.from_arrays(
        [flows["server_ip"].astype(str), flows["server_port"].astype(int), flows["client_port"].astype(int)]
    )
    up = quoted.reindex(keys).fillna(0).to_numpy()
    # reports about the server's packets quote the server as the source
    down_q = size.groupby(["quoted_src", "quoted_sport", "quoted_dport"]).size()
    down = down_q.reindex(keys).fillna(0).to_numpy()
    return (up + down).astype(np.int64)


def _derive(cap: Capture, fate: np.ndarray) -> pd.DataFrame:
    f = cap.flows.copy()
    if len(f):
        f = pd.concat([f, delivery(cap.packets, fate, len(f)), turns(cap.packets, f)], axis=1)
    else:
        for name in [*(f"{c}_{d}" for c in DELIVERY_COLUMNS for d in ("c2s", "s2c")), *TURN_COLUMNS]:
            f[name] = pd.Series(dtype="int64" if name != "idle_turn" else "object")
    f["hdr"] = np.where(f["ipv"] == 6, 60, 40)
    f["mss_at_server"] = f["mss_client"]
    f["twin_conn"] = -1
    f["host_own"] = False
    f["view_cut"] = False  # a container connection its capture ended on: judged on the far side (_cut_short)
    f["judged_here"] = False  # the far twin of such a connection
    f["handshake_ok"] = (f["syn_frame"] >= 0) & (f["synack_frame"] >= 0)
    f["request_sent"] = f["bytes_c2s"] > 0
    f["stalled_s"] = f["max_idle"]
    # bytes of an HTTP/1.x response its own framing announced and the client had not received when the
    # capture ended (http_framing): at the transport level a download that hangs after its headers is on
    # the client's turn, like an idle keep-alive, but the server still owes them
    # (sent_s2c is the sequence number past the server's data; acked_s2c counts the bytes acknowledged)
    received = np.where(f["acks_seen_s2c"] > 0, f["acked_s2c"] + 1, f["sent_s2c"])
    f["http_owed_s2c"] = np.where(
        f["http_response_end"] > 0, np.maximum(f["http_response_end"] - received, 0), 0
    )
    # ... so through a silence after which no server data came, and at the end, the turn was the server's
    owed_response = f["http_owed_s2c"] > 0
    f.loc[owed_response & (f["bytes_s2c_after_idle"] == 0) & (f["idle_turn"] == "client"), "idle_turn"] = (
        "server"
    )
    f.loc[owed_response & (f["end_turn"] == "client"), "end_turn"] = "server"
    # a silence counts as a stall only when somebody owed the other side something (turns.py): an idle
    # keep-alive connection (the client's turn) is not one
    f["owed_stall"] = f["idle_turn"].isin(["network", "server"])
    # still open at the end of the capture, long silent, and the network or the server owed the next packet:
    # a request that was never answered (a connection idle on the client's turn is a keep-alive)
    end = float(cap.packets["ts"].max()) if len(cap.packets) else 0.0
    f["tail_idle_s"] = np.maximum(end - f["last_ts"], 0.0)
    f["followed_s"] = end - f["first_ts"]  # how long the capture followed it (a SYN waits its 1 s RTO in it)
    f["unanswered"] = (
        f["state"].isin(["open", "closing"]) & f["end_turn"].isin(["network", "server"]) & f["request_sent"]
    )
    # the server's sequence numbers ran ahead of everything the client acknowledged (delivery.py)
    f["s2c_never_acked"] = (
        never_acknowledged(cap.packets, len(f), 1) if len(f) else np.zeros(0, dtype=np.int64)
    )
    # holes in the server's data, as the client's ACKs show them (gap seen or SACK hole reported)
    f["s2c_holes"] = (f["lost_before_s2c"] > 0) | (f["sack_acks_c2s"] > 0)
    f["c2s_holes"] = (f["lost_before_c2s"] > 0) | (f["sack_acks_s2c"] > 0)
    return f


def _sizes(f: pd.DataFrame) -> None:
    """Full-size packets each way: header + the smaller of the MSS the receiver offered and the sender's own.

    Without the handshake the MSS is unknown: the full size is then estimated as the largest packet seen
    either way (`full_estimated`), which a sender-side capture shows and a receiver-side one may not."""
    both = (f["mss_at_server"] > 0) & (f["mss_server"] > 0)
    f["server_full"] = np.where(both, f["hdr"] + np.minimum(f["mss_at_server"], f["mss_server"]), 0)
    f["client_full"] = np.where(both, f["hdr"] + np.minimum(f["mss_client"], f["mss_server"]), 0)
    largest = np.maximum(f["max_ip_len_s2c"], f["max_ip_len_c2s"])
    f["full_estimated"] = f["midstream"] & (largest > f["hdr"] + 536)
    f.loc[f["full_estimated"], "server_full"] = largest[f["full_estimated"]]
    f.loc[f["full_estimated"], "client_full"] = largest[f["full_estimated"]]
    # delivered means acknowledged by the receiver (delivery.py); only where this capture holds none of the
    # receiver's ACKs does presence stand in for it
    for d, full in (("s2c", "server_full"), ("c2s", "client_full")):
        f[f"largest_delivered_{d}"] = np.where(
            f[f"acks_seen_{d}"] > 0, f[f"delivered_max_ip_{d}"], f[f"max_ip_len_{d}"]
        )
        f[f"full_delivered_{d}"] = (f[full] > 0) & (f[f"largest_delivered_{d}"] >= f[full])
        f[f"full_sent_{d}"] = (f[full] > 0) & (f[f"max_ip_len_{d}"] >= f[full])
        # full-size segments re-sent and never acknowledged while smaller ones were: loss by size
        f[f"full_lost_{d}"] = (
            (f[full] > 0)
            & (f[f"lost_max_ip_{d}"] >= f[full])
            & ~f[f"full_delivered_{d}"]
            & (f[f"lost_not_larger_{d}"] == 0)
        )
    # the client was sending full-size data that stayed unacknowledged: an upload stall, not a download one
    f["upload_stall"] = f["full_sent_c2s"] & (f["retrans_c2s"] >= 2) & (f["acked_c2s"] < f["sent_c2s"])
    # the server itself aborted (RST) with no sign of loss: an application reset, not a path problem
    f["server_aborted"] = (f["closed_by"] == "server") & (f["state"] == "reset") & ~f["s2c_holes"]
    # the server answered and closed, and the client got every byte: it had nothing more to send
    f["response_complete"] = f["fin_server"] & (f["acked_s2c"] >= f["sent_s2c"]) & ~f["s2c_holes"]
    # the longest silence came after the request went out (not between SYN retries)
    f["stalled_after_request"] = (f["first_data_ts_c2s"] > 0) & (
        f["idle_start_ts"] + 1e-6 >= f["first_data_ts_c2s"]
    )
    # after the longest stall the server went on with clearly smaller segments, for at least two of them:
    # the fingerprint of packetization-layer PMTU probing (RFC 4821)
    after = f["max_payload_s2c_after_idle"]
    f["resumed_smaller"] = (
        (after > 0)
        & (after + f["hdr"] + 12 < f["server_full"])
        & (f["bytes_s2c_after_idle"] >= 2 * (f["server_full"] - f["hdr"]))
    )
