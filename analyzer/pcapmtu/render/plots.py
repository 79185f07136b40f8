"""Plots that answer one question each. Every function returns a matplotlib Figure.

Figures are made with `matplotlib.figure.Figure` directly, never through pyplot: no global backend switch,
no figure left open in a notebook, and Jupyter shows the returned figure as it would any other.

- time_sequence: where do the big segments disappear? (Stevens/tcptrace style, host and container overlaid)
- timeline: which connections failed, when, to which service?
- sizes: the "size wall" - packet sizes per capture and direction against the MTU lines
- mss_summary: advertised MSS per endpoint as interface MTUs, against the path MTU
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from ..results import Verdict
from ..textsafe import printable

if TYPE_CHECKING:  # annotations only: render needs no diagnose module loaded to import
    from ..diagnose.analysis import Analysis

VERDICT_COLORS = {
    Verdict.MTU_BLACKHOLE: "#d62728",
    Verdict.MTU_BLACKHOLE_RECOVERED: "#ff7f0e",
    Verdict.NOT_MTU: "#9467bd",
    Verdict.INCONCLUSIVE: "#bcbd22",
    Verdict.HEALTHY: "#2ca02c",
}
ROLE_COLORS = {"container": "#1f77b4", "host": "#8c564b"}


def _label(text: object, limit: int = 48) -> str:
    # matplotlib treats $...$ as math: keep capture strings literal
    return printable(text, limit).replace("$", r"\$")


def time_sequence(analysis: Analysis, role: str, conn: int) -> Figure:
    """Sequence number vs time of one connection; the host's view of the same connection overlaid."""
    ctx = analysis.context
    fig = Figure(figsize=(12, 5.2), dpi=100)
    ax = fig.subplots()
    flow = ctx.flow(role, conn)
    views = [(role, conn)]
    twin = ctx.twin(role, conn)
    if twin:
        views.append(twin)
    direction = 0 if int(flow["bytes_c2s"]) > int(flow["bytes_s2c"]) * 4 and flow["upload_stall"] else 1
    sender = "server" if direction == 1 else "client"
    t0 = float(flow["first_ts"])
    for view_role, view_conn in views:
        p = ctx.conn_packets(view_role, view_conn)
        color = ROLE_COLORS.get(view_role, "#1f77b4")
        data = p[(p["dir"] == direction) & (p["payload_len"] > 0)]
        # on this capture's clock: the other capture's times less the offset pairing measured
        shift = t0 + ctx.clock_offset(view_role) - ctx.clock_offset(role)
        t = data["ts"].to_numpy() - shift
        lo = data["rel_seq"].to_numpy()
        hi = lo + data["payload_len"].to_numpy()
        retrans = data["retrans"].to_numpy()
        offset = 0.0 if view_role == role else 0.004 * max(float(flow["duration"]), 0.5)
        ax.vlines(
            t[~retrans] + offset,
            lo[~retrans],
            hi[~retrans],
            colors=color,
            linewidth=2.5,
            zorder=3,
            label=f"{sender} data seen in {view_role} capture",
        )
        if retrans.any():
            ax.vlines(t[retrans], lo[retrans], hi[retrans], colors="#d62728", linewidth=2.5)
            ax.scatter(
                t[retrans],
                hi[retrans],
                marker="x",
                color="#d62728",
                zorder=3,
                label=f"retransmission ({view_role})",
            )
        acks = p[(p["dir"] == 1 - direction) & ((p["tcp_flags"] & 0x10) > 0)]
        ax.step(
            acks["ts"].to_numpy() - shift,
            acks["rel_ack"].to_numpy(),
            where="post",
            color=color,
            alpha=0.5,
            linestyle="--",
            label=f"ACKs seen in {view_role} capture",
        )
        sack = ctx.captures[view_role].sack
        if len(sack):
            rows = acks.index.to_numpy()
            blocks = sack[sack["row"].isin(rows)]
            if len(blocks):
                isn = int(flow["isn_server"] if direction == 1 else flow["isn_client"])
                bt = ctx.captures[view_role].packets["ts"].to_numpy()[blocks["row"].to_numpy()] - shift
                left = (blocks["left"].to_numpy().astype(np.int64) - isn) % (1 << 32)
                right = (blocks["right"].to_numpy().astype(np.int64) - isn) % (1 << 32)
                ax.vlines(
                    bt,
                    left,
                    right,
                    colors="#17becf",
                    linewidth=7,
                    alpha=0.35,
                    zorder=1,
                    label="SACK blocks (data received above a hole)",
                )
                first = blocks.index.min()
                hole_top = int(left[blocks.index.get_indexer([first])[0]]) if first is not None else 0
                ack_at = acks["rel_ack"].to_numpy()
                if view_role == role and len(ack_at) and hole_top > ack_at.max():
                    # a bar at the right edge marks the range of sequence numbers that never arrived, so the
                    # data drawn over it stays readable
                    ax.axhspan(
                        ack_at.max(),
                        hole_top,
                        xmin=0.97,
                        xmax=1.0,
                        color="#d62728",
                        alpha=0.5,
                        label=f"never received: {hole_top - int(ack_at.max())} bytes",
                    )
    if flow["stalled_s"] >= ctx.th.stall_s:
        start = float(flow["idle_start_ts"]) - t0
        ax.axvspan(
            start,
            start + float(flow["stalled_s"]),
            color="#d62728",
            alpha=0.08,
            label=f"stall {float(flow['stalled_s']):.1f} s",
        )
    verdict = _verdict_of(analysis, role, conn)
    ax.set_title(
        _label(
            f"{flow['name'] or flow['server_ip']}:{flow['server_port']} - {verdict}: "
            f"largest {sender} packet seen {int(flow['max_ip_len_s2c' if direction else 'max_ip_len_c2s'])} "
            f"of {int(flow['server_full' if direction else 'client_full'])} bytes",
            110,
        )
    )
    ax.set_xlabel("time since the connection started (s)")
    ax.set_ylabel(f"{sender} sequence number, relative (bytes)")
    ax.grid(alpha=0.3)
    _dedup_legend(ax)
    fig.tight_layout()
    return fig


def timeline(analysis: Analysis) -> Figure:
    """Every connection as a bar over time, labelled by service, coloured by verdict."""
    rows = []
    for role, group in analysis.verdicts.groupby("capture", sort=False):
        f = analysis.context.flows(role).iloc[group["conn"].to_numpy()]  # flows are numbered 0..n-1 in order
        shift = analysis.context.clock_offset(role)  # every capture on the client-side captures' clock
        names = zip(group["capture"].tolist(), group["conn"].tolist(), group["service"].tolist(), strict=True)
        labels = [f"{capture} #{conn} {service}" for capture, conn, service in names]
        # columns as lists: a row at a time through pandas' Arrow strings costs ~10 us a value
        for start, end, label, verdict in zip(
            f["first_ts"].tolist(), f["last_ts"].tolist(), labels, group["verdict"].tolist(), strict=True
        ):
            rows.append((float(start) - shift, float(end) - shift, label, verdict))
    rows.sort()
    if len(rows) > 60:  # keep the ones that matter: every non-healthy connection, then the earliest others
        bad = [r for r in rows if r[3] != Verdict.HEALTHY]
        rows = sorted(bad[:60] + [r for r in rows if r[3] == Verdict.HEALTHY][: max(0, 60 - len(bad))])
    height = max(2.5, 0.32 * len(rows) + 1.2)
    fig = Figure(figsize=(10, min(height, 24)), dpi=100)
    ax = fig.subplots()
    if rows:
        t0 = rows[0][0]
        span = max(r[1] for r in rows) - t0
        shown = rows[:60]
        ax.barh(  # one call for all the bars: the same rectangles as one call per bar, drawn much faster
            range(len(shown)),
            [
                max(end - start, span * 0.004, 0.002) for start, end, _name, _v in shown
            ],  # short ones stay visible
            left=[start - t0 for start, _end, _name, _v in shown],
            color=[VERDICT_COLORS.get(verdict, "grey") for _s, _e, _name, verdict in shown],
            height=0.6,
        )
        ax.set_yticks(range(min(len(rows), 60)), [_label(r[2], 60) for r in rows[:60]], fontsize=8)
        ax.invert_yaxis()
    counts = analysis.verdicts["verdict"].value_counts()
    ax.set_title(_label("connections: " + ", ".join(f"{n} {v}" for v, n in counts.items()), 110))
    ax.set_xlabel("time since the first connection (s)")
    ax.legend(
        handles=[Patch(color=c, label=v) for v, c in VERDICT_COLORS.items() if v in counts.index],
        loc="lower right",
        fontsize=8,
    )
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig


def sizes(analysis: Analysis) -> Figure:
    """IP packet sizes per capture and direction, against the path MTU and each side's MTU."""
    caps = list(analysis.captures.items())
    fig = Figure(figsize=(12, 2.6 * len(caps) + 0.8), dpi=100)
    axes = fig.subplots(len(caps), 1, squeeze=False)
    path = analysis.diagnosis.path_mtu
    for ax, (role, cap) in zip(axes[:, 0], caps, strict=True):
        # the three columns it needs, not a filtered copy of the whole packets table (~120 MiB per 1M packets)
        packets = cap.packets
        data = (packets["conn"].to_numpy() >= 0) & (packets["payload_len"].to_numpy() > 0)
        ip_len, direction = packets["ip_len"].to_numpy()[data], packets["dir"].to_numpy()[data]
        # edges at 25k+1: a packet of exactly an MTU-like size (1450, 1500) falls left of its line
        bins = np.arange(1, max(1601, int(ip_len.max()) + 51 if len(ip_len) else 1601), 25)
        for d, label, color in ((1, "server to client", "#1f77b4"), (0, "client to server", "#ff7f0e")):
            values = ip_len[direction == d]
            if len(values):
                ax.hist(
                    values,
                    bins=bins,
                    histtype="stepfilled",  # one polygon, not a rectangle per bin: the same picture, drawn faster
                    alpha=0.6,
                    label=f"{label} ({len(values)} data packets)",
                    color=color,
                )
        if path:
            ax.axvline(path, color="#d62728", linestyle="-", label=f"path MTU {path}")
        f = analysis.context.flows(role)
        syn = f[f["mss_client"] > 0]
        if len(syn):  # MSS + 40 bytes of headers for IPv4, + 60 for IPv6
            implied = syn["mss_client"].astype(int) + np.where(syn["ipv"] == 6, 60, 40)
            mtu = int(implied.mode().iloc[0])
            ax.axvline(mtu, color="#2ca02c", linestyle="--", label=f"client MTU {mtu} (from SYN MSS)")
        ax.set_yscale("log")
        # ticks at 1, 2, 5, 10, 20, 50 ...: a log axis over one decade would otherwise show a single tick
        ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:.0f}"))
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.set_ylabel("packets")
        ax.set_title(_label(f"{role} capture: sizes of TCP data packets"), fontsize=10)
        if ax.get_legend_handles_labels()[0]:  # nothing to label (no data, no MTU line): no empty legend
            ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
        ax.grid(alpha=0.3)
    axes[-1, 0].set_xlabel("IP packet size (bytes)")
    fig.suptitle(_label(_size_headline(analysis), 110), fontsize=11)
    fig.tight_layout()
    return fig


def mss_summary(analysis: Analysis) -> Figure:
    """Advertised MSS per endpoint and capture, as the interface MTU it implies, against the path MTU."""
    bars = []
    for role in analysis.captures:
        flows = analysis.context.flows(role)
        for side in ("client", "server"):
            col = f"mss_{side}"
            f = flows[[col, f"{side}_ip", "host_own"]]  # not a filtered copy of every flow column
            sel = f[f[col] > 0]
            if role == "host":
                sel = sel[sel["host_own"]] if side == "client" else sel
            for ip, group in sel.groupby(f"{side}_ip"):
                mss = int(group[col].mode().iloc[0])
                hdr = 60 if ":" in str(ip) else 40
                bars.append((f"{role}: {side} {ip}", mss, mss + hdr))
    bars = sorted(set(bars))[:30]
    fig = Figure(figsize=(10, max(2.5, 0.35 * len(bars) + 1.4)), dpi=100)
    ax = fig.subplots()
    if bars:
        ax.barh(range(len(bars)), [b[2] for b in bars], color="#1f77b4")
        for i, b in enumerate(bars):
            ax.text(b[2] + 5, i, f"MSS {b[1]} -> MTU {b[2]}", va="center", fontsize=8)
        ax.set_yticks(range(len(bars)), [_label(b[0], 50) for b in bars], fontsize=8)
        ax.invert_yaxis()
        ax.set_xlim(0, max(b[2] for b in bars) * 1.25)
    path = analysis.diagnosis.path_mtu
    if path:
        ax.axvline(path, color="#d62728", label=f"path MTU {path}")
        ax.legend(loc="lower right", fontsize=8)
    ax.set_xlabel("interface MTU implied by the advertised MSS (bytes)")
    ax.set_title("advertised MSS per endpoint vs the path MTU")
    fig.tight_layout()
    return fig


def _size_headline(analysis: Analysis) -> str:
    d = analysis.diagnosis
    if d.verdict == Verdict.MTU_BLACKHOLE and d.path_mtu:
        return f"nothing above {d.path_mtu} bytes gets through: the size wall"
    return f"packet sizes ({d.verdict})"


def _verdict_of(analysis: Analysis, role: str, conn: int) -> str:
    v = analysis.verdicts
    hit = v[(v["capture"] == role) & (v["conn"] == conn)]
    return hit.iloc[0]["verdict"] if len(hit) else ""


def _dedup_legend(ax) -> None:
    handles, labels = ax.get_legend_handles_labels()
    seen: dict[str, object] = {}
    for h, label in zip(handles, labels, strict=True):
        seen.setdefault(label, h)
    if seen:
        # beside the axes, never over the data
        ax.legend(
            seen.values(),
            seen.keys(),
            fontsize=8,
            loc="upper left",
            bbox_to_anchor=(1.01, 1.0),
            borderaxespad=0.0,
        )
