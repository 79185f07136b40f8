"""Q: can the captures be trusted for size and loss questions?"""

from __future__ import annotations

import numpy as np

from ...evidence import first_frames, frames_filter
from ...ingest.decode import LT_ETHERNET
from ...results import Severity
from ..context import Context
from . import Hit, rule


@rule(
    code="Q001",
    name="snaplen-truncation",
    severity=Severity.INFO,
    message="{count} of {total} packets in the {role} capture were cut by the snapshot length (smallest kept: {caplen} bytes)",
    fix="Capture with `tcpdump -s 0` to keep whole packets; sizes and loss are still read from the IP headers.",
    why="Truncated packets keep their headers, so pcapmtu never counts cut bytes as lost data, but payload "
    "layers (DNS answers, TLS hellos) may be missing.",
    example={"count": 412, "total": 1180, "role": "host", "caplen": 96},
    references=("https://www.tcpdump.org/manpages/pcap-savefile.5.html",),
)
def snaplen_truncation(ctx: Context):
    for role, cap in ctx.captures.items():
        p = cap.packets
        cut = p[p["truncated"]]
        if len(cut):
            yield Hit(
                {"count": len(cut), "total": len(p), "role": role, "caplen": int(cut["caplen"].min())},
                capture=role,
                frames=first_frames(cut["frame"]),
            )


@rule(
    code="Q002",
    name="undecodable-frames",
    severity=Severity.WARNING,
    message="{count} packets in the {role} capture could not be fully decoded ({detail})",
    fix="Look at these frames in Wireshark; a damaged capture can hide the packets that matter.",
    why="Malformed or unsupported frames are kept as rows with a status, not silently dropped.",
    example={
        "count": 3,
        "role": "container",
        "detail": "2 x IPv4 header length below 20, 1 x truncated TCP header",
    },
    references=("RFC 791", "RFC 8200", "RFC 9293"),
)
def undecodable_frames(ctx: Context):
    for role, cap in ctx.captures.items():
        p = cap.packets
        bad = p[p["status"] != "ok"]
        if len(bad):
            detail = ", ".join(f"{k}: {v}" for k, v in bad["status"].value_counts().items() if v)
            yield Hit(
                {"count": len(bad), "role": role, "detail": detail},
                capture=role,
                frames=first_frames(bad["frame"]),
                wireshark_filter=frames_filter(bad["frame"][:50]),
            )


# The largest MTU of an Ethernet link in common use (switches' jumbo frames; clouds allow 8896-9001), and of
# any other link a capture may come from (Linux's loopback, which `-i any` includes; tun devices)
JUMBO_MTU, LOOPBACK_MTU = 9216, 65536


@rule(
    code="Q003",
    name="offload-super-packets",
    severity=Severity.WARNING,
    message="{count} packets in the {role} capture are larger than any MTU on the path (up to {size} bytes): "
    "segmentation/receive offload merged them before capture",
    fix="Turn offloads off where you capture (`ethtool -K IFACE tso off gso off gro off`) to see wire-sized packets.",
    why="With TSO/GSO/GRO the capture shows what the kernel handled, not what crossed the wire; such packets "
    "must not be read as proof that large packets pass.",
    example={"count": 2, "role": "container", "size": 200},
    references=("https://docs.kernel.org/networking/segmentation-offloads.html",),
)
def offload_super_packets(ctx: Context):
    for role, cap in ctx.captures.items():
        f = ctx.flows(role)
        p = cap.packets
        conn = p["conn"].to_numpy()
        tcp = np.flatnonzero((conn >= 0) & (p["payload_len"].to_numpy() > 0))  # rows: no copy of the table
        if not len(tcp):
            continue
        full = f.set_index("conn")
        mss = full[["mss_client", "mss_server"]].max(axis=1)
        limit = (full["hdr"] + mss).where(mss > 0, 0).reindex(conn[tcp]).to_numpy()
        # no MSS seen (a capture started mid-connection): only the link's own limit says a packet is merged
        ethernet = p["linktype"].to_numpy()[tcp] == LT_ETHERNET
        limit = np.where(limit > 0, limit, np.where(ethernet, JUMBO_MTU, LOOPBACK_MTU))
        ip_len = p["ip_len"].to_numpy()[tcp]
        big = ip_len > limit + ctx.th.offload_margin
        if big.any():
            frames = p["frame"].to_numpy()[tcp[big]]
            yield Hit(
                {"count": len(frames), "role": role, "size": int(ip_len[big].max())},
                capture=role,
                frames=first_frames(frames),
                wireshark_filter=frames_filter(frames[:50]),
            )


@rule(
    code="Q004",
    name="interface-copies",
    severity=Severity.INFO,
    message="{count} packets in the {role} capture are copies of a packet already seen on another interface "
    "(`tcpdump -i any`); they are not counted as retransmissions",
    fix="Capture on one interface (the uplink, or the container's eth0) to keep captures small and unambiguous.",
    why="With `-i any` a forwarded packet is written once per interface it crosses (veth, bridge, uplink).",
    example={"count": 21, "role": "host"},
    references=("https://www.tcpdump.org/linktypes/LINKTYPE_LINUX_SLL2.html",),
)
def interface_copies(ctx: Context):
    for role, cap in ctx.captures.items():
        dup = cap.packets[cap.packets["dup_copy"]]
        if len(dup) >= ctx.th.dup_copy_min:
            yield Hit({"count": len(dup), "role": role}, capture=role, frames=first_frames(dup["frame"]))


@rule(
    code="Q005",
    name="damaged-file",
    severity=Severity.WARNING,
    message="the {role} capture is damaged: {warning}",
    fix="The packets before the damage were analysed; re-copy the file if it was cut in transfer.",
    why="A capture cut by a full disk or a killed tcpdump still holds useful packets.",
    example={
        "role": "host",
        "warning": "the last record is cut short after 38,912 of 39,000 bytes (the capture was still being written?)",
    },
    references=(
        "https://www.tcpdump.org/manpages/pcap-savefile.5.html",
        "https://www.ietf.org/archive/id/draft-ietf-opsawg-pcapng-02.html",
    ),
)
def damaged_file(ctx: Context):
    for role, cap in ctx.captures.items():
        if cap.skipped_bytes:
            stop = next(
                (w for w in cap.warnings if "stopped reading" in w), cap.warnings[0] if cap.warnings else ""
            )
            yield Hit({"role": role, "warning": stop}, capture=role)
