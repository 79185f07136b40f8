"""Q: can the captures be trusted for size and loss questions?"""

from __future__ import annotations

from ...evidence import first_frames, frames_filter
from ..context import Context
from . import Hit, rule


@rule(
    "Q001",
    "snaplen-truncation",
    "info",
    "{count} of {total} packets in the {role} capture were cut by the snapshot length (smallest kept: {caplen} bytes)",
    "Capture with `tcpdump -s 0` to keep whole packets; sizes and loss are still read from the IP headers.",
    "Truncated packets keep their headers, so pcapmtu never counts cut bytes as lost data, but payload "
    "layers (DNS answers, TLS hellos) may be missing.",
)
def truncated(ctx: Context):
    for role, cap in ctx.captures.items():
        p = cap.packets
        cut = p[p["truncated"]]
        if len(cut):
            yield Hit({"count": len(cut), "total": len(p), "role": role, "caplen": int(cut["caplen"].min())},
                      capture=role, frames=first_frames(cut["frame"]))  # fmt: skip


@rule(
    "Q002",
    "undecodable-frames",
    "warning",
    "{count} packets in the {role} capture could not be fully decoded ({detail})",
    "Look at these frames in Wireshark; a damaged capture can hide the packets that matter.",
    "Malformed or unsupported frames are kept as rows with a status, not silently dropped.",
)
def undecodable(ctx: Context):
    for role, cap in ctx.captures.items():
        p = cap.packets
        bad = p[p["status"] != "ok"]
        if len(bad):
            detail = ", ".join(f"{k}: {v}" for k, v in bad["status"].value_counts().items() if v)
            yield Hit({"count": len(bad), "role": role, "detail": detail}, capture=role,
                      frames=first_frames(bad["frame"]), wireshark_filter=frames_filter(bad["frame"][:50]))  # fmt: skip


@rule(
    "Q003",
    "offload-super-packets",
    "warning",
    "{count} packets in the {role} capture are larger than any MTU on the path (up to {size} bytes): "
    "segmentation/receive offload merged them before capture",
    "Turn offloads off where you capture (`ethtool -K IFACE tso off gso off gro off`) to see wire-sized packets.",
    "With TSO/GSO/GRO the capture shows what the kernel handled, not what crossed the wire; such packets "
    "must not be read as proof that large packets pass.",
)
def offload(ctx: Context):
    for role, cap in ctx.captures.items():
        f = ctx.flows(role)
        p = cap.packets
        tcp = p[(p["conn"] >= 0) & (p["payload_len"] > 0)]
        if not len(tcp):
            continue
        full = f.set_index("conn")
        limit = (full["hdr"] + full[["mss_client", "mss_server"]].max(axis=1)).reindex(tcp["conn"]).to_numpy()
        big = tcp[(limit > 0) & (tcp["ip_len"].to_numpy() > limit + ctx.th.offload_margin)]
        if len(big):
            yield Hit({"count": len(big), "role": role, "size": int(big["ip_len"].max())}, capture=role,
                      frames=first_frames(big["frame"]), wireshark_filter=frames_filter(big["frame"][:50]))  # fmt: skip


@rule(
    "Q004",
    "interface-copies",
    "info",
    "{count} packets in the {role} capture are copies of a packet already seen on another interface "
    "(`tcpdump -i any`); they are not counted as retransmissions",
    "Capture on one interface (the uplink, or the container's eth0) to keep captures small and unambiguous.",
    "With `-i any` a forwarded packet is written once per interface it crosses (veth, bridge, uplink).",
)
def copies(ctx: Context):
    for role, cap in ctx.captures.items():
        dup = cap.packets[cap.packets["dup_copy"]]
        if len(dup) >= ctx.th.dup_copy_min:
            yield Hit({"count": len(dup), "role": role}, capture=role, frames=first_frames(dup["frame"]))


@rule(
    "Q005",
    "damaged-file",
    "warning",
    "the {role} capture is damaged: {warning}",
    "The packets before the damage were analysed; re-copy the file if it was cut in transfer.",
    "A capture cut by a full disk or a killed tcpdump still holds useful packets.",
)
def damaged(ctx: Context):
    for role, cap in ctx.captures.items():
        if cap.skipped_bytes:
            stop = next(
                (w for w in cap.warnings if "stopped reading" in w), cap.warnings[0] if cap.warnings else ""
            )
            yield Hit({"role": role, "warning": stop}, capture=role)
