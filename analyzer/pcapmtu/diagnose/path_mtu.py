"""What the captures say about the path MTU, from every size signal they hold.

Signals and what each proves (per IP version; v4 headers are 40 bytes with TCP, v6 60):
- a host's own SYN MSS: its interface MTU is MSS + header (a host advertising 1410 has a 1450 uplink);
- an ICMP fragmentation-needed / packet-too-big: the reporting hop's MTU, exactly (RFC 1191, 4443);
- the largest packet that arrived from the far side: the path carries at least that much;
- a connection that stalled while every full-size packet went missing: the path does not carry that size;
- DF pings (`ping -M do -s N`): sizes that got a reply passed, larger ones that did not, did not;
- `--host-mtu`: the engineer's own statement.
The estimate is a value when one exact signal fits inside the bracket [carried, not carried), else the bracket.
"""

from __future__ import annotations

import numpy as np

from ..results import PathMTU
from .context import Context


def infer(ctx: Context) -> dict[int, PathMTU]:
    return {ipv: _infer(ctx, ipv) for ipv in (4, 6) if _has_ipv(ctx, ipv)}


def _has_ipv(ctx: Context, ipv: int) -> bool:
    return any(
        (cap.flows["ipv"] == ipv).any() or len(cap.icmp[cap.icmp["ipv"] == ipv])
        for cap in ctx.captures.values()
    )


def _infer(ctx: Context, ipv: int) -> PathMTU:
    hdr = 40 if ipv == 4 else 60
    signals: list[dict] = []
    for role, cap in ctx.captures.items():
        icmp = cap.icmp[(cap.icmp["ipv"] == ipv) & cap.icmp["kind"].isin(["frag_needed", "packet_too_big"])]
        for mtu, frame, target in zip(
            icmp["mtu"], icmp["frame"], icmp["quoted_dst"].astype(str), strict=True
        ):
            if mtu >= 68:
                signal = {"kind": "icmp", "capture": role, "frame": int(frame), "mtu": int(mtu)}
                signals.append(signal | ({"target": target} if target else {}))  # no target: quote cut short
    if ctx.facts.host_mtu:  # an interface MTU is the same number for IPv4 and IPv6
        signals.append({"kind": "stated_host_mtu", "mtu": ctx.facts.host_mtu})
    if ctx.facts.container_mtu:
        # the container's own interface bounds what it can receive: a path wider than it is not the problem
        signals.append({"kind": "stated_container_mtu", "mtu": ctx.facts.container_mtu})
    if "host" in ctx.captures:
        own = ctx.judged("host")
        own = own.loc[(own["ipv"] == ipv) & (own["mss_client"] > 0), ["mss_client", "syn_frame"]]
        if len(own):
            mss = int(own["mss_client"].mode().iloc[0])
            signals.append(
                {
                    "kind": "host_syn_mss",
                    "capture": "host",
                    "mss": mss,
                    "mtu": mss + hdr,
                    "frame": int(own.loc[own["mss_client"] == mss, "syn_frame"].iloc[0]),
                }
            )
    exact = [s for s in signals if s["kind"] in EXACT]  # strongest first: ICMP, stated, the host's SYN
    low, low_why = _largest_delivered(ctx, ipv, signals)
    high, high_why = _smallest_lost(ctx, ipv, signals, low)
    _pings(ctx, ipv, signals)
    for s in signals:
        if s["kind"] == "ping_reply" and (low is None or s["size"] > low):
            low, low_why = s["size"], f"a DF ping of {s['size']} bytes got a reply"
        if s["kind"] == "ping_lost" and (high is None or s["size"] < high):
            high, high_why = s["size"], f"DF pings of {s['size']} bytes got no reply"
    if low is not None and high is not None and low >= high:
        # the two directions disagree (an asymmetric path): what was lost is what matters for the failure
        signals.append({"kind": "asymmetric", "carried": low, "lost": high})
        low, low_why = None, ""
    for signal in exact:
        mtu = signal["mtu"]
        if (low is None or mtu >= low) and (high is None or mtu < high):
            signal["decided"] = True
            return PathMTU(ipv, mtu, low, high, signal_words(signal, ipv), tuple(signals))
    if low is not None and high is not None and high == low + 1:
        return PathMTU(ipv, low, low, high, f"{low_why}; {high_why}", tuple(signals), independent=False)
    if low is not None and high is not None:
        # the path carried `low` and not `high`; a SYN somewhere advertising exactly `low` - hdr names an
        # interface of that MTU on the path: the bracket's floor is then the value
        mss = _syn_mss_values(ctx, ipv)
        if low - hdr in mss:
            why = (
                f"{low_why}; {high_why}; a SYN in the {mss[low - hdr]} capture advertises MSS {low - hdr}, "
                f"an interface MTU of exactly {low}"
            )
            return PathMTU(ipv, low, low, high, why, tuple(signals), independent=False)
    why = "; ".join(w for w in (low_why, high_why) if w) or "no size signal in the captures"
    return PathMTU(ipv, None, low, high, why, tuple(signals))


def _syn_mss_values(ctx: Context, ipv: int) -> dict[int, str]:
    """Every MSS a SYN or SYN-ACK advertised, with the capture it is in."""
    out: dict[int, str] = {}
    for role in ctx.captures:
        f = ctx.flows(role)
        f = f.loc[f["ipv"] == ipv, ["mss_client", "mss_server"]]
        for col in ("mss_client", "mss_server"):
            for mss in f.loc[f[col] > 0, col].unique():
                out.setdefault(int(mss), role)
    return out


def _largest_delivered(ctx: Context, ipv: int, signals: list[dict]) -> tuple[int | None, str]:
    """Largest packet the receiver acknowledged, either way (offload super-packets excluded)."""
    best, why = None, ""
    for role in ctx.captures:
        f = ctx.flows(role)
        for d, full, sender in (("s2c", "server_full", "server_ip"), ("c2s", "client_full", "client_ip")):
            largest = f[f"largest_delivered_{d}"].to_numpy()
            limit = f[full].to_numpy()
            # a packet larger than the sender's own MSS allows was merged by offload: not evidence
            sane = np.flatnonzero(
                (f["ipv"].to_numpy() == ipv) & (largest > 0) & ((limit == 0) | (largest <= limit))
            )
            if not len(sane):
                continue
            i = int(sane[np.argmax(largest[sane])])  # the first of the largest, as idxmax
            size = int(largest[i])
            if best is None or size > best:
                best = size
                acked = f[f"acks_seen_{d}"].iat[i] > 0
                why = f"{size}-byte packets from {f[sender].iat[i]} were " + (
                    f"acknowledged by the receiver ({role} capture)"
                    if acked
                    else f"seen in the {role} capture"
                )
    if best is not None:
        signals.append({"kind": "largest_delivered", "size": best, "why": why})
    return best, why


def _smallest_lost(
    ctx: Context, ipv: int, signals: list[dict], delivered: int | None
) -> tuple[int | None, str]:
    """Full-size packets that never arrived while smaller ones did: the RFC 2923 black-hole pattern."""
    best, why = None, ""
    for role in ctx.captures:
        f = ctx.judged(role)
        lost = f.loc[
            (f["ipv"] == ipv)
            & f["handshake_ok"]
            & f["request_sent"]
            & ~f["full_delivered_s2c"]
            & (f["server_full"] > 0)
            & (f["stalled_s"] >= ctx.th.stall_s)
            & ~f["upload_stall"]
            & ~f["response_complete"]
            & f["stalled_after_request"]
            & (
                f["s2c_holes"]
                | f["full_lost_s2c"]
                | (f["bytes_s2c"] == 0)
                | (f["max_payload_s2c_after_idle"] < f["max_payload_s2c_before_idle"])
            ),
            ["server_full", "full_lost_s2c"],  # the columns read below: a row selection copies every one
        ]
        # a download is only evidence while no packet that large ever arrived from the far side: if one did,
        # the loss was not about size (other connections prove the path carries it)
        if len(lost) and (delivered is None or int(lost["server_full"].min()) > delivered):
            size = int(lost["server_full"].min())
            if best is None or size < best:
                sender_side = lost["full_lost_s2c"].any()
                best, why = (
                    size,
                    (
                        f"{size}-byte packets from the server were re-sent and never acknowledged "
                        f"({role} capture)"
                        if sender_side
                        else f"{size}-byte packets from the server never reached the {role} capture"
                    ),
                )
        # uploads: full-size packets the client sent and re-sent and that were never acknowledged
        up = f.loc[
            (f["ipv"] == ipv) & f["handshake_ok"] & f["upload_stall"] & (f["stalled_s"] >= ctx.th.stall_s),
            ["client_full"],
        ]
        if role != ctx.far_role and len(up):
            size = int(up["client_full"].min())
            if best is None or size < best:
                best, why = (
                    size,
                    f"{size}-byte packets from the client were never acknowledged ({role} capture)",
                )
    if best is not None:
        signals.append({"kind": "smallest_lost", "size": best, "why": why})
    return best, why


def _pings(ctx: Context, ipv: int, signals: list[dict]) -> None:
    """DF echo requests and whether a reply of the same size came back."""
    req_type, rep_type = (8, 0) if ipv == 4 else (128, 129)
    for role, cap in ctx.captures.items():
        p = cap.packets
        kind = p["icmp_type"].to_numpy()
        echo = (p["ipv"].to_numpy() == ipv) & ((kind == req_type) | (kind == rep_type))
        if not echo.any():
            continue
        icmp = p.loc[echo, ["icmp_type", "df", "src", "dst", "ip_len", "frame"]]
        req = icmp[(icmp["icmp_type"] == req_type) & (icmp["df"] | (ipv == 6))]
        rep = icmp[icmp["icmp_type"] == rep_type]
        replied = set(zip(rep["src"].astype(str), rep["ip_len"].astype(int), strict=True))
        for (dst, size), group in req.groupby(
            [req["dst"].astype(str), req["ip_len"].astype(int)], observed=True
        ):
            kind = "ping_reply" if (dst, size) in replied else "ping_lost"
            signals.append(
                {
                    "kind": kind,
                    "capture": role,
                    "size": int(size),
                    "target": dst,
                    "frames": [int(x) for x in group["frame"].to_numpy()[:5]],
                }
            )


EXACT = ("icmp", "stated_host_mtu", "host_syn_mss")  # signals that state one MTU, strongest first


def signal_words(signal: dict, ipv: int) -> str:
    """An exact signal, in words."""
    if signal["kind"] == "icmp":
        what = "fragmentation needed" if ipv == 4 else "packet too big"
        about = f" about packets to {signal['target']}" if signal.get("target") else ""
        return f"ICMP {what} (next-hop MTU {signal['mtu']}){about} in {signal['capture']} frame {signal['frame']}"
    if signal["kind"] == "stated_host_mtu":
        return f"--host-mtu {signal['mtu']}"
    return f"the host's own SYN advertises MSS {signal['mss']}, so its uplink MTU is {signal['mtu']}"


def cited_for(path: PathMTU, server_ip: str) -> str:
    """Why `path.value` holds, in words that cite no other server's packets: the signal that decided it, else
    one that states the same MTU about the host or this server; "" when only another server's ICMP pins it.
    An explanation of one connection cites this, so it never says "no ICMP came back" and then quotes an
    ICMP that was about a different server."""
    if path.value is None:
        return ""
    same = [s for s in path.signals if s["kind"] in EXACT and s["mtu"] == path.value]
    same.sort(key=lambda s: not s.get("decided"))
    for s in same:
        if s.get("target", str(server_ip)) == str(server_ip):
            return path.decided_by if s.get("decided") else signal_words(s, path.ipv)
    return ""
