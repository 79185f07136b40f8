"""Columnar header decoding: link layer -> IPv4/IPv6 -> TCP/UDP/ICMP, for a whole batch at once.

Every field is gathered with numpy fancy indexing over the batch's byte array, guarded by the captured
length, so a hostile or truncated packet yields a status code on its row instead of an exception.
Rare layers whose shape varies (DNS, ICMP quotes, TLS) are not decoded here: their bytes are copied out
for `rare_layers`, which uses dpkt. Overlays (VXLAN, Geneve, GRE, IP-in-IP, Teredo, L2TP) are decapsulated
so the row describes the inner packet, with the outer IP length kept beside it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .. import schema
from . import native

# Link types (https://www.tcpdump.org/linktypes.html)
LT_NULL, LT_ETHERNET, LT_RAW_OLD, LT_RAW_BSD, LT_RAW = 0, 1, 12, 14, 101
LT_LOOP, LT_SLL, LT_IPV4, LT_IPV6, LT_SLL2 = 108, 113, 228, 229, 276
LINKTYPE_NAMES = {
    LT_NULL: "NULL",
    LT_ETHERNET: "EN10MB",
    LT_RAW_OLD: "RAW",
    LT_RAW_BSD: "RAW",
    LT_RAW: "RAW",
    LT_LOOP: "LOOP",
    LT_SLL: "LINUX_SLL",
    LT_IPV4: "IPV4",
    LT_IPV6: "IPV6",
    LT_SLL2: "LINUX_SLL2",
}
SUPPORTED_LINKTYPES = frozenset(LINKTYPE_NAMES)

ET_IPV4, ET_IPV6 = 0x0800, 0x86DD
VLAN_TPIDS = (0x8100, 0x88A8, 0x9100)
PROTO_ICMP, PROTO_IPIP, PROTO_TCP, PROTO_UDP, PROTO_IPV6, PROTO_GRE, PROTO_ICMPV6 = 1, 4, 6, 17, 41, 47, 58
VXLAN_PORTS = (4789, 8472)  # IANA port; 8472 is the Linux kernel's historical default
GENEVE_PORT = 6081
DNS_PORT = 53

# Encapsulation codes (column `encap`)
ENCAP_NAMES = ["", "vxlan", "geneve", "gre", "ipip", "teredo", "l2tp"]
ENC_NONE, ENC_VXLAN, ENC_GENEVE, ENC_GRE, ENC_IPIP, ENC_TEREDO, ENC_L2TP = range(7)
TEREDO_PORT = 3544
L2TP_PORT = 1701

# Decode status codes (column `status`); 0 = decoded as far as the protocols go
STATUS_NAMES = [
    "ok",
    "unsupported-linktype",
    "link-truncated",
    "ip-truncated",
    "ip-bad-version",
    "ipv4-bad-header-length",
    "ipv4-bad-total-length",
    "ipv6-bad-extension",
    "tcp-truncated",
    "tcp-bad-header-length",
    "tcp-bad-length",
    "udp-truncated",
    "icmp-truncated",
]
(
    ST_OK,
    ST_LINKTYPE,
    ST_LINK_TRUNC,
    ST_IP_TRUNC,
    ST_IP_VERSION,
    ST_IPV4_HLEN,
    ST_IPV4_TOTLEN,
    ST_IPV6_EXT,
    ST_TCP_TRUNC,
    ST_TCP_HLEN,
    ST_TCP_LEN,
    ST_UDP_TRUNC,
    ST_ICMP_TRUNC,
) = range(len(STATUS_NAMES))

TCP_OPT_END, TCP_OPT_NOP, TCP_OPT_MSS, TCP_OPT_WS, TCP_OPT_SACKOK, TCP_OPT_SACK, TCP_OPT_TS = (
    0,
    1,
    2,
    3,
    4,
    5,
    8,
)
IPV6_EXT_GENERIC = (0, 43, 60, 135, 139, 140)  # hop-by-hop, routing, dest opts, mobility, HIP, shim6
IPV6_FRAG, IPV6_AH = 44, 51

# The columns the decoder writes per packet, in the order the C core writes them (_native.c: DECODED_COLUMNS).
# Their dtypes are schema.PACKETS' (docs/tables.md); a category column is written as its uint8 code.
DECODED = (
    *("linktype", "ifindex", "pkttype", "encap", "outer_ip_len"),  # link layer, overlay
    *("ipv", "ip_len", "ip_id", "df", "frag", "frag_off", "ttl", "proto"),  # IPv4 / IPv6
    *("sport", "dport", "tcp_flags", "seq", "ack", "win", "tcp_hdr_len"),  # ports, TCP header
    *("payload_len", "payload0", "payload_off"),  # transport payload
    *("mss", "wscale", "sack_perm", "sack_blocks", "tsval", "tsecr", "has_ts"),  # TCP options
    *("icmp_type", "icmp_code", "status"),  # ICMP; the first problem found (0: none)
)
COLUMNS: dict[str, str] = {
    name: "u1" if schema.PACKETS[name][0] == "category" else np.dtype(schema.PACKETS[name][0]).str[1:]
    for name in DECODED
}


def layout() -> tuple[tuple[str, str, int, bool], ...]:
    """`COLUMNS` as the C core describes the columns it writes (`COLUMN_LAYOUT`): per column its name, dtype,
    item size and whether it is signed, in order."""
    return tuple(
        (name, dtype, np.dtype(dtype).itemsize, np.dtype(dtype).kind == "i")
        for name, dtype in COLUMNS.items()
    )


# A C core built from another version of _native.c writes other columns: the numpy paths run instead.
if native.ENABLED and layout() != native.core.COLUMN_LAYOUT:
    native.switch_off(
        "the C core writes other columns than schema.PACKETS types (a stale build: reinstall it)"
    )


@dataclass
class Decoded:
    """Columns for one batch plus the sparse extras (addresses, SACK blocks, rare payloads)."""

    cols: dict[str, np.ndarray]
    addr: np.ndarray  # (n, 4) uint64: src_hi, src_lo, dst_hi, dst_lo (IPv4 as ::ffff:a.b.c.d)
    sack_rows: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    sack_left: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint32))
    sack_right: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint32))
    rare_rows: list[int] = field(default_factory=list)  # rows whose L4 payload was copied
    rare_bytes: list[bytes] = field(default_factory=list)  # from the L4 header (UDP/ICMP) to the end


class _Bytes:
    """Bounds-checked big-endian reads over one batch buffer.

    A read of `size` bytes at one offset per row indexes a view whose item i is the `size` bytes at
    buf[i]: one fancy-indexing call copies each row's bytes (one memcpy-like item each), instead of one
    call per byte plus shifts.
    """

    def __init__(self, buf: np.ndarray, start: np.ndarray, end: np.ndarray) -> None:
        self.buf = buf
        self.start = start  # per-row start of the packet (absolute offset in buf)
        self.end = end  # per-row end of captured bytes (absolute offset in buf)
        self._windows: dict[int, np.ndarray] = {}

    def ok(self, rows: np.ndarray, off: np.ndarray, size: int) -> np.ndarray:
        return (off >= 0) & (off + size <= self.end[rows])

    def windows(self, size: int) -> np.ndarray:
        """Read-only view of len(buf) - size + 1 items of `size` bytes: item i holds bytes i .. i+size-1."""
        view = self._windows.get(size)
        if view is None:
            items = max(len(self.buf) - size + 1, 0)
            view = np.ndarray(
                shape=(items,), dtype=np.dtype((np.void, size)), buffer=self.buf, strides=self.buf.strides
            )
            view.flags.writeable = False
            self._windows[size] = view
        return view

    def rows(self, off: np.ndarray, size: int) -> np.ndarray:
        """The `size` bytes at each offset as an (n, size) uint8 array (caller guarantees bounds)."""
        return self.windows(size)[off].view(np.uint8).reshape(-1, size)

    def block(self, off: np.ndarray, valid: np.ndarray, size: int) -> np.ndarray:
        """The `size` bytes at each row's offset as an (n, size) array, zeros where not `valid`: a header
        read in one call, its fields then sliced out with `header_field()`."""
        if valid.all():
            return self.rows(off, size)
        out = np.zeros((len(off), size), dtype=np.uint8)
        if valid.any():
            out[valid] = self.rows(off[valid], size)
        return out

    def u8(self, off: np.ndarray, valid: np.ndarray) -> np.ndarray:
        return header_field(self.block(off, valid, 1), 0, 1)

    def u16(self, off: np.ndarray, valid: np.ndarray) -> np.ndarray:
        return header_field(self.block(off, valid, 2), 0, 2)

    def u32(self, off: np.ndarray, valid: np.ndarray) -> np.ndarray:
        return header_field(self.block(off, valid, 4), 0, 4)

    def u64(self, off: np.ndarray) -> np.ndarray:
        """Eight bytes as uint64 (caller guarantees bounds)."""
        return self.windows(8)[off].view(">u8").reshape(-1).astype(np.uint64)


def header_field(block: np.ndarray, at: int, size: int) -> np.ndarray:
    """A big-endian unsigned field of every row of a `_Bytes.block`, as int64."""
    dtype = {1: "u1", 2: ">u2", 4: ">u4"}[size]
    return np.ascontiguousarray(block[:, at : at + size]).view(dtype).reshape(-1).astype(np.int64)


def decode_batch(buf: np.ndarray, data_off: np.ndarray, caplen: np.ndarray, linktype: np.ndarray) -> Decoded:
    """Decode every record of a batch into columns. Never raises on packet contents.

    With the C core (`native.ENABLED`), C decodes the common shapes and hands back the rows it leaves to
    numpy; the result is the same either way (tests/test_native.py).
    """
    if not native.ENABLED or not len(data_off):
        return _decode_numpy(buf, data_off, caplen, linktype)
    out = _new_decoded(len(data_off), linktype)
    data_off = np.ascontiguousarray(data_off, dtype=np.int64)
    caplen = np.ascontiguousarray(caplen, dtype=np.int64)
    linktype = np.ascontiguousarray(linktype, dtype=np.int64)
    fallback, sack_rows, sack_left, sack_right, rare_rows, rare_bytes = native.core.decode(
        buf, data_off, caplen, linktype, tuple(out.cols.values()), out.addr
    )
    out.sack_rows = np.frombuffer(sack_rows, dtype=np.int64)
    out.sack_left = np.frombuffer(sack_left, dtype=np.uint32)
    out.sack_right = np.frombuffer(sack_right, dtype=np.uint32)
    out.rare_rows = np.frombuffer(rare_rows, dtype=np.int64).tolist()
    out.rare_bytes = rare_bytes
    rows = np.frombuffer(fallback, dtype=np.int64)
    if len(rows):  # the rows C left to numpy: decode them alone, then put them in place
        sub = _decode_numpy(buf, data_off[rows], caplen[rows], linktype[rows])
        for name, column in out.cols.items():
            column[rows] = sub.cols[name]
        out.addr[rows] = sub.addr
        _merge_sparse(out, rows, sub)
    return out


def _new_decoded(n: int, linktype: np.ndarray) -> Decoded:
    """Columns of `n` rows at their "nothing decoded" values."""
    cols = {name: np.zeros(n, dtype=dt) for name, dt in COLUMNS.items()}
    cols["linktype"][:] = linktype
    for name in ("ifindex", "pkttype", "wscale", "payload0", "icmp_type", "icmp_code"):
        cols[name][:] = -1
    return Decoded(cols=cols, addr=np.zeros((n, 4), dtype=np.uint64))


def _merge_sparse(out: Decoded, rows: np.ndarray, sub: Decoded) -> None:
    """Add the SACK blocks and rare payloads of `sub` (rows `rows` of `out`), keeping both sorted by row."""
    _set_sack_by_row(
        out,
        np.concatenate([out.sack_rows, rows[sub.sack_rows]]),
        np.concatenate([out.sack_left, sub.sack_left]),
        np.concatenate([out.sack_right, sub.sack_right]),
    )
    if sub.rare_rows:
        sub_rows = rows[np.asarray(sub.rare_rows, dtype=np.int64)].tolist()
        _set_rare_by_row(out, out.rare_rows + sub_rows, out.rare_bytes + sub.rare_bytes)


def _set_sack_by_row(out: Decoded, rows: np.ndarray, left: np.ndarray, right: np.ndarray) -> None:
    """SACK blocks ordered by row; a row's own blocks keep their order in its options."""
    order = np.argsort(rows, kind="stable")
    out.sack_rows, out.sack_left, out.sack_right = rows[order], left[order], right[order]


def _set_rare_by_row(out: Decoded, rows: list[int], payloads: list[bytes]) -> None:
    """Rare payloads in row (frame) order, whichever layer copied them."""
    order = np.argsort(rows, kind="stable").tolist()
    out.rare_rows = [rows[i] for i in order]
    out.rare_bytes = [payloads[i] for i in order]


def _decode_numpy(buf: np.ndarray, data_off: np.ndarray, caplen: np.ndarray, linktype: np.ndarray) -> Decoded:
    """The pure numpy decoder: every shape, one layer at a time over all rows."""
    n = len(data_off)
    out = _new_decoded(n, linktype)
    cols = out.cols
    rd = _Bytes(buf, data_off, data_off + caplen)
    rows = np.arange(n, dtype=np.int64)
    sack: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for lt in np.unique(linktype):
        sel = rows[linktype == lt]
        if int(lt) not in SUPPORTED_LINKTYPES:
            cols["status"][sel] = ST_LINKTYPE
            continue
        l3, et = _link(rd, out, int(lt), sel, data_off[sel])
        _network(rd, out, sel, l3, et, sack, depth=0)
    if sack:
        _set_sack_by_row(
            out,
            np.concatenate([s[0] for s in sack]),
            np.concatenate([s[1] for s in sack]).astype(np.uint32),
            np.concatenate([s[2] for s in sack]).astype(np.uint32),
        )
    if out.rare_rows:
        _set_rare_by_row(out, out.rare_rows, out.rare_bytes)
    return out


# ---------------------------------------------------------------------------------------------- link layer
def _link(
    rd: _Bytes, out: Decoded, lt: int, rows: np.ndarray, off: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Return (offset of the network header, ethertype) per row; -1 offset when there is none."""
    cols = out.cols
    if lt == LT_ETHERNET:
        return _ethernet(rd, out, rows, off)
    if lt == LT_SLL:
        ok = rd.ok(rows, off, 16)
        cols["pkttype"][rows] = np.where(ok, rd.u16(off, ok), -1)
        return _with_status(out, rows, ok, off + 16, rd.u16(off + 14, ok))
    if lt == LT_SLL2:
        ok = rd.ok(rows, off, 20)
        cols["ifindex"][rows] = np.where(ok, rd.u32(off + 4, ok), -1)
        cols["pkttype"][rows] = np.where(ok, rd.u8(off + 10, ok), -1)
        return _with_status(out, rows, ok, off + 20, rd.u16(off, ok))
    if lt in (LT_NULL, LT_LOOP):
        ok = rd.ok(rows, off, 4)
        fam_be = rd.u32(off, ok)
        fam_le = (
            ((fam_be & 0xFF) << 24) | ((fam_be & 0xFF00) << 8) | ((fam_be >> 8) & 0xFF00) | (fam_be >> 24)
        )
        if lt == LT_LOOP:  # network byte order
            fam = fam_be
        else:  # the capturing host's byte order; Wireshark's packet-null.c guesses it the same way
            irix = ((fam_le & 0xFF000000) == 0) & ((fam_le & 0x00FF0000) < 0x00060000)
            fam = np.where(fam_le & 0xFFFF0000, np.where(irix, fam_le >> 16, fam_be), fam_le)
        # a value above the largest 802.3 length is an Ethertype, anything else a BSD AF_ value
        af_et = np.where(fam == 2, ET_IPV4, np.where(np.isin(fam, (24, 28, 30)), ET_IPV6, 0))
        et = np.where(fam > 1500, np.where(np.isin(fam & 0xFFFF, (ET_IPV4, ET_IPV6)), fam & 0xFFFF, 0), af_et)
        return _with_status(out, rows, ok, off + 4, et)
    # raw IP: the version nibble says which
    ok = rd.ok(rows, off, 1)
    ver = rd.u8(off, ok) >> 4
    if lt == LT_IPV4:
        et = np.full(len(rows), ET_IPV4)
    elif lt == LT_IPV6:
        et = np.full(len(rows), ET_IPV6)
    else:
        et = np.where(ver == 4, ET_IPV4, np.where(ver == 6, ET_IPV6, 0))
    return _with_status(out, rows, ok, off, et)


def _ppp_ethertype(proto: np.ndarray) -> np.ndarray:
    """PPP protocol numbers of IPv4 (0x21) and IPv6 (0x57) as Ethertypes; 0 for anything else."""
    return np.where(proto == 0x21, ET_IPV4, np.where(proto == 0x57, ET_IPV6, 0))


def _with_status(out: Decoded, rows, ok, l3, et):
    out.cols["status"][rows[~ok]] = ST_LINK_TRUNC
    return np.where(ok, l3, -1), np.where(ok, et, 0)


def _ethernet(rd: _Bytes, out: Decoded, rows: np.ndarray, off: np.ndarray):
    ok = rd.ok(rows, off, 14)
    et = rd.u16(off + 12, ok)
    hdr = np.full(len(rows), 14, dtype=np.int64)
    for _ in range(3):  # up to three stacked VLAN tags (802.1Q, 802.1ad QinQ)
        tagged = ok & np.isin(et, VLAN_TPIDS)
        if not tagged.any():
            break
        more = tagged & rd.ok(rows, off + hdr + 4, 0)
        ok &= ~tagged | more
        et = np.where(tagged, rd.u16(off + hdr + 2, more), et)
        hdr = np.where(tagged, hdr + 4, hdr)
    pppoe = ok & (et == 0x8864)  # PPPoE session: 6-byte header, then the PPP protocol number
    if pppoe.any():
        good = pppoe & rd.ok(rows, off + hdr, 8)
        proto = rd.u16(off + hdr + 6, good)
        et = np.where(pppoe, _ppp_ethertype(proto), et)
        hdr = np.where(pppoe, hdr + 8, hdr)
        ok &= ~pppoe | good
    mpls = ok & np.isin(et, (0x8847, 0x8848))
    if mpls.any():  # pop labels to the bottom of the stack, then guess IP by its version nibble
        active = mpls.copy()
        for _ in range(8):
            good = active & rd.ok(rows, off + hdr, 4)
            bottom = (rd.u8(off + hdr + 2, good) & 1).astype(bool)
            hdr = np.where(good, hdr + 4, hdr)
            active = good & ~bottom
            if not active.any():
                break
        ver = rd.u8(off + hdr, mpls & rd.ok(rows, off + hdr, 1)) >> 4
        et = np.where(mpls, np.where(ver == 4, ET_IPV4, np.where(ver == 6, ET_IPV6, 0)), et)
    return _with_status(out, rows, ok, off + hdr, et)


# -------------------------------------------------------------------------------------------- network layer
def _network(rd: _Bytes, out: Decoded, rows, l3, et, sack, depth: int) -> None:
    """Decode IPv4/IPv6 and their transport; recurse once into overlay payloads."""
    v4 = (et == ET_IPV4) & (l3 >= 0)
    v6 = (et == ET_IPV6) & (l3 >= 0)
    l4 = np.full(len(rows), -1, dtype=np.int64)
    l4_len = np.zeros(len(rows), dtype=np.int64)  # transport bytes per the IP header (not caplen)
    proto = np.zeros(len(rows), dtype=np.int64)
    if v4.any():
        r, o = rows[v4], l3[v4]
        a, b, c = _ipv4(rd, out, r, o)
        l4[v4], l4_len[v4], proto[v4] = a, b, c
    if v6.any():
        r, o = rows[v6], l3[v6]
        a, b, c = _ipv6(rd, out, r, o)
        l4[v6], l4_len[v6], proto[v6] = a, b, c
    has = l4 >= 0
    if not has.any():
        return
    rows, l4, l4_len, proto = rows[has], l4[has], l4_len[has], proto[has]
    tcp, udp = proto == PROTO_TCP, proto == PROTO_UDP
    icmp = (proto == PROTO_ICMP) | (proto == PROTO_ICMPV6)
    if tcp.any():
        _tcp(rd, out, rows[tcp], l4[tcp], l4_len[tcp], sack)
    if udp.any():
        _udp(rd, out, rows[udp], l4[udp], l4_len[udp])
    if icmp.any():
        _icmp(rd, out, rows[icmp], l4[icmp], l4_len[icmp], proto[icmp])
    if depth == 0:
        _decapsulate(rd, out, rows, l4, proto, sack)


def _ipv4(rd: _Bytes, out: Decoded, rows, off):
    cols = out.cols
    ok = rd.ok(rows, off, 20)
    hdr = rd.block(off, ok, 20)
    b0 = header_field(hdr, 0, 1)
    ver, ihl = b0 >> 4, (b0 & 0x0F) * 4
    total = header_field(hdr, 2, 2)
    # TSO/GSO super-packets sometimes carry total length 0: take the length from the wire instead
    wire_total = rd.end[rows] - off
    total = np.where(ok & (total == 0), wire_total, total)
    status = np.where(
        ~ok, ST_IP_TRUNC, np.where(ver != 4, ST_IP_VERSION, np.where(ihl < 20, ST_IPV4_HLEN, 0))
    )
    status = np.where((status == 0) & (total < ihl), ST_IPV4_TOTLEN, status)
    good = status == 0
    if not good.all():
        hdr[~good] = 0  # fields below are read only where the header is sound
    flags = header_field(hdr, 6, 2)
    frag_off = (flags & 0x1FFF) * 8
    cols["ipv"][rows] = np.where(good, 4, 0)
    cols["ip_len"][rows] = np.where(good, total, 0)
    cols["ip_id"][rows] = header_field(hdr, 4, 2)
    cols["df"][rows] = (flags & 0x4000) > 0
    cols["frag"][rows] = ((flags & 0x2000) > 0) | (frag_off > 0)
    cols["frag_off"][rows] = frag_off
    cols["ttl"][rows] = header_field(hdr, 8, 1)
    p = header_field(hdr, 9, 1)
    cols["proto"][rows] = p
    _set_status(cols, rows, status)
    src, dst = header_field(hdr, 12, 4), header_field(hdr, 16, 4)
    mapped = np.uint64(0xFFFF00000000)
    out.addr[rows, 0] = 0
    out.addr[rows, 1] = np.where(good, src.astype(np.uint64) | mapped, 0)
    out.addr[rows, 2] = 0
    out.addr[rows, 3] = np.where(good, dst.astype(np.uint64) | mapped, 0)
    has_l4 = good & (frag_off == 0) & (total > ihl)
    return np.where(has_l4, off + ihl, -1), np.where(has_l4, total - ihl, 0), p


def _ipv6(rd: _Bytes, out: Decoded, rows, off):
    cols = out.cols
    ok = rd.ok(rows, off, 40)
    ver = rd.u8(off, ok) >> 4
    status = np.where(~ok, ST_IP_TRUNC, np.where(ver != 6, ST_IP_VERSION, 0))
    good = status == 0
    plen = rd.u16(off + 4, good)
    plen = np.where(good & (plen == 0), np.maximum(rd.end[rows] - off - 40, 0), plen)  # jumbogram / TSO
    nh = rd.u8(off + 6, good)
    cols["ipv"][rows] = np.where(good, 6, 0)
    cols["ip_len"][rows] = np.where(good, plen + 40, 0)
    cols["ttl"][rows] = rd.u8(off + 7, good)
    if good.any():
        g, go = rows[good], off[good]
        out.addr[g, 0] = rd.u64(go + 8)
        out.addr[g, 1] = rd.u64(go + 16)
        out.addr[g, 2] = rd.u64(go + 24)
        out.addr[g, 3] = rd.u64(go + 32)
    # walk extension headers (RFC 8200 section 4) on the rows that have them
    cur = off + 40
    frag_off = np.zeros(len(rows), dtype=np.int64)
    active = good & (np.isin(nh, IPV6_EXT_GENERIC) | (nh == IPV6_FRAG) | (nh == IPV6_AH))
    for _ in range(10):
        if not active.any():
            break
        fits = active & rd.ok(rows, cur, 8)
        status = np.where(active & ~fits, ST_IPV6_EXT, status)
        nxt = rd.u8(cur, fits)
        hlen = rd.u8(cur + 1, fits)
        is_frag = fits & (nh == IPV6_FRAG)
        if is_frag.any():
            fo = rd.u16(cur + 2, is_frag)
            frag_off = np.where(is_frag, fo & 0xFFF8, frag_off)
            # an "atomic fragment" (offset 0, no more fragments; RFC 6946) is a whole packet
            real = is_frag & (((fo & 0xFFF8) > 0) | ((fo & 1) > 0))
            cols["frag"][rows[real]] = True
            cols["ip_id"][rows[is_frag]] = rd.u32(cur + 4, is_frag)[is_frag]
        step = np.where(is_frag, 8, np.where(nh == IPV6_AH, (hlen + 2) * 4, (hlen + 1) * 8))
        cur = np.where(fits, cur + step, cur)
        nh = np.where(fits, nxt, nh)
        active = fits & (np.isin(nh, IPV6_EXT_GENERIC) | (nh == IPV6_FRAG) | (nh == IPV6_AH))
    ext_len = cur - off - 40
    status = np.where((status == 0) & good & (ext_len > plen), ST_IPV6_EXT, status)
    _set_status(cols, rows, status)
    good = status == 0
    cols["proto"][rows] = np.where(good, nh, 0)
    cols["frag_off"][rows] = frag_off
    has_l4 = good & (frag_off == 0) & (nh != 59) & (plen > ext_len)
    return np.where(has_l4, cur, -1), np.where(has_l4, plen - ext_len, 0), nh


def _set_status(cols, rows, status) -> None:
    """Record the first problem found on each row (do not overwrite an earlier one)."""
    cur = cols["status"][rows]
    cols["status"][rows] = np.where(cur == 0, status, cur)


# ------------------------------------------------------------------------------------------ transport layer
def _tcp(rd: _Bytes, out: Decoded, rows, off, seg_len, sack) -> None:
    cols = out.cols
    ok = rd.ok(rows, off, 20)
    hdr = rd.block(off, ok, 20)
    doff = (header_field(hdr, 12, 1) >> 4) * 4
    status = np.where(~ok, ST_TCP_TRUNC, np.where(doff < 20, ST_TCP_HLEN, 0))
    status = np.where((status == 0) & (doff > seg_len), ST_TCP_LEN, status)
    _set_status(cols, rows, status)
    cols["sport"][rows] = header_field(hdr, 0, 2)
    cols["dport"][rows] = header_field(hdr, 2, 2)
    cols["seq"][rows] = header_field(hdr, 4, 4)
    cols["ack"][rows] = header_field(hdr, 8, 4)
    cols["tcp_flags"][rows] = header_field(hdr, 12, 2) & 0x0FFF
    cols["win"][rows] = header_field(hdr, 14, 2)
    good = status == 0
    cols["tcp_hdr_len"][rows] = np.where(good, doff, 0)
    payload = np.where(good, seg_len - doff, 0)
    cols["payload_len"][rows] = payload
    first = good & (payload > 0) & rd.ok(rows, off + doff, 1)
    cols["payload0"][rows] = np.where(first, rd.u8(off + doff, first), -1)
    cols["payload_off"][rows] = np.where(good, np.minimum(off + doff - rd.start[rows], 65535), 0)
    # most segments carry exactly NOP, NOP, timestamps (RFC 7323 appendix A): read those in one go
    cand = np.flatnonzero(good & (doff == 32) & rd.ok(rows, off + 20, 12))
    ts_only = np.zeros(len(rows), dtype=bool)
    if len(cand):
        opt = rd.block(off[cand] + 20, np.ones(len(cand), dtype=bool), 12)
        hit = header_field(opt, 0, 4) == 0x0101080A
        opt, mine = opt[hit], cand[hit]
        cols["tsval"][rows[mine]] = header_field(opt, 4, 4)
        cols["tsecr"][rows[mine]] = header_field(opt, 8, 4)
        cols["has_ts"][rows[mine]] = True
        ts_only[mine] = True
    walk = good & ~ts_only
    if walk.any():
        _tcp_options(
            rd, out, rows[walk], off[walk] + 20, np.minimum(off[walk] + doff[walk], rd.end[rows[walk]]), sack
        )


def _tcp_options(rd: _Bytes, out: Decoded, rows, cur, oend, sack) -> None:
    """Walk TCP options (RFC 9293 3.1) for all rows in lock-step; malformed options end the walk."""
    cols = out.cols
    buf = rd.buf
    active = cur < oend
    for _ in range(40):
        idx = np.flatnonzero(active)
        if not len(idx):
            break
        r, c, e = rows[idx], cur[idx], oend[idx]
        kind = buf[c].astype(np.int64)
        nop = kind == TCP_OPT_NOP
        other = (kind != TCP_OPT_END) & ~nop
        has_len = other & (c + 1 < e)
        ln = np.where(has_len, buf[np.where(has_len, c + 1, 0)], 0).astype(np.int64)
        fine = has_len & (ln >= 2) & (c + ln <= e)
        for code, size in ((TCP_OPT_MSS, 4), (TCP_OPT_WS, 3), (TCP_OPT_TS, 10)):
            m = fine & (kind == code) & (ln == size)
            if not m.any():
                continue
            if code == TCP_OPT_MSS:
                cols["mss"][r[m]] = rd.u16(c[m] + 2, np.ones(int(m.sum()), bool))
            elif code == TCP_OPT_WS:
                cols["wscale"][r[m]] = np.minimum(buf[c[m] + 2], 127)
            else:
                t = np.ones(int(m.sum()), bool)
                cols["tsval"][r[m]] = rd.u32(c[m] + 2, t)
                cols["tsecr"][r[m]] = rd.u32(c[m] + 6, t)
                cols["has_ts"][r[m]] = True
        cols["sack_perm"][r[fine & (kind == TCP_OPT_SACKOK)]] = True
        sk = fine & (kind == TCP_OPT_SACK) & (ln >= 10)
        if sk.any():
            nblocks = np.minimum((ln[sk] - 2) // 8, 4)
            cols["sack_blocks"][r[sk]] = nblocks
            for b in range(4):
                has_b = nblocks > b
                if not has_b.any():
                    break
                base = c[sk][has_b] + 2 + 8 * b
                t = np.ones(len(base), bool)
                sack.append((r[sk][has_b], rd.u32(base, t), rd.u32(base + 4, t)))
        cur[idx] = np.where(nop, c + 1, np.where(fine, c + ln, c))
        active[idx] = (nop | fine) & (cur[idx] < e)


def _udp(rd: _Bytes, out: Decoded, rows, off, seg_len) -> None:
    cols = out.cols
    ok = rd.ok(rows, off, 8)
    _set_status(cols, rows, np.where(ok, 0, ST_UDP_TRUNC))
    sport, dport = rd.u16(off, ok), rd.u16(off + 2, ok)
    cols["sport"][rows] = sport
    cols["dport"][rows] = dport
    cols["payload_len"][rows] = np.where(ok, np.maximum(seg_len - 8, 0), 0)
    dns = ok & ((sport == DNS_PORT) | (dport == DNS_PORT))
    _copy_rare(rd, out, rows[dns], off[dns], off[dns] + seg_len[dns])


def _icmp(rd: _Bytes, out: Decoded, rows, off, seg_len, proto) -> None:
    cols = out.cols
    ok = rd.ok(rows, off, 4) & (seg_len >= 4)  # captured, and inside the IP payload
    _set_status(cols, rows, np.where(ok, 0, ST_ICMP_TRUNC))
    typ, code = rd.u8(off, ok), rd.u8(off + 1, ok)
    cols["icmp_type"][rows] = np.where(ok, typ, -1)
    cols["icmp_code"][rows] = np.where(ok, code, -1)
    cols["payload_len"][rows] = np.where(ok, np.maximum(seg_len - 8, 0), 0)
    # errors that quote the offending packet (RFC 792, RFC 4443): v4 unreachable, source quench, time exceeded,
    # parameter problem; v6 unreachable, too big, time exceeded, parameter problem
    v4 = proto == PROTO_ICMP
    quoting = ok & ((v4 & np.isin(typ, (3, 4, 11, 12))) | (~v4 & np.isin(typ, (1, 2, 3, 4))))
    _copy_rare(rd, out, rows[quoting], off[quoting], off[quoting] + seg_len[quoting])


def _copy_rare(rd: _Bytes, out: Decoded, rows, start, stop) -> None:
    """Copy the L4 bytes of rare packets for `rare_layers` (dpkt); their count is small by nature."""
    if not len(rows):
        return
    stop = np.minimum(stop, rd.end[rows])
    raw = rd.buf
    for r, a, b in zip(rows.tolist(), start.tolist(), stop.tolist(), strict=True):
        out.rare_rows.append(r)
        out.rare_bytes.append(raw[a:b].tobytes() if b > a else b"")


# ---------------------------------------------------------------------------------------------- overlays
def _l2tp(rd: _Bytes, rows, l4, cand) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """L2TPv2 data messages (RFC 2661 3.1) carrying PPP with IPv4 or IPv6: (which, inner offset, ethertype).

    Control messages (T bit), other versions (L2TPv3 has its own header) and PPP control protocols (LCP,
    IPCP) stay plain UDP.
    """
    none = np.zeros(len(rows), dtype=bool), np.zeros(len(rows), dtype=np.int64), np.zeros(len(rows), np.int64)
    cand = cand & rd.ok(rows, l4, 8 + 6)
    if not cand.any():
        return none
    flags = rd.u16(l4 + 8, cand)
    cand &= ((flags & 0x000F) == 2) & ((flags & 0x8000) == 0)  # version 2, data message
    hdr = l4 + 8 + 2 + 2 * ((flags & 0x4000) > 0) + 4 + 4 * ((flags & 0x0800) > 0)  # length, ids, Ns/Nr
    has_offset = cand & ((flags & 0x0200) > 0) & rd.ok(rows, hdr, 2)
    hdr = hdr + np.where(has_offset, 2 + rd.u16(hdr, has_offset), 0)
    cand &= rd.ok(rows, hdr, 2)
    acf = cand & (rd.u16(hdr, cand) == 0xFF03)  # PPP address and control, unless compressed away
    ppp = np.where(acf, hdr + 2, hdr)
    cand &= rd.ok(rows, ppp, 2)
    first = rd.u8(ppp, cand)
    short = (first & 1) == 1  # protocol-field compression: one byte
    proto = np.where(short, first, rd.u16(ppp, cand))
    et = _ppp_ethertype(proto)
    which = cand & (et > 0)
    return which, ppp + np.where(short, 1, 2), et


def _decapsulate(rd: _Bytes, out: Decoded, rows, l4, proto, sack) -> None:
    """Re-decode overlay payloads in place; the outer IP length is kept in `outer_ip_len`."""
    cols = out.cols
    dport = cols["dport"][rows].astype(np.int64)
    udp = proto == PROTO_UDP
    vx = udp & np.isin(dport, VXLAN_PORTS) & rd.ok(rows, l4, 8 + 8 + 14)
    vx &= (rd.u8(l4 + 8, vx) & 0x08) > 0  # VXLAN "I" flag: a valid VNI follows (RFC 7348)
    gen = udp & (dport == GENEVE_PORT) & rd.ok(rows, l4, 8 + 8 + 14)
    gen_hdr = 8 + (rd.u8(l4 + 8, gen) & 0x3F) * 4
    gen &= rd.u16(l4 + 10, gen) == 0x6558
    gre = (proto == PROTO_GRE) & rd.ok(rows, l4, 4)
    ipip = np.isin(proto, (PROTO_IPIP, PROTO_IPV6))
    sport = cols["sport"][rows].astype(np.int64)
    teredo = udp & ((dport == TEREDO_PORT) | (sport == TEREDO_PORT)) & rd.ok(rows, l4, 8 + 40)
    teredo_hdr = np.full(len(rows), 8, dtype=np.int64)
    if teredo.any():  # RFC 4380 5.1.1: optional origin-indication (0x0000) header before the IPv6 packet
        origin = teredo & (rd.u16(l4 + 8, teredo) == 0) & rd.ok(rows, l4, 16 + 40)
        teredo_hdr = np.where(origin, 16, 8)
        teredo &= (rd.u8(l4 + teredo_hdr, teredo) >> 4) == 6
    l2tp, l2tp_l3, l2tp_et = _l2tp(rd, rows, l4, udp & ((dport == L2TP_PORT) | (sport == L2TP_PORT)))
    if not (vx.any() or gen.any() or gre.any() or ipip.any() or teredo.any() or l2tp.any()):
        return

    def mark(sel, kind):
        r = rows[sel]
        if out.rare_rows and len(r):  # bytes copied for the outer layer (e.g. UDP port 53) no longer apply
            keep = ~np.isin(np.asarray(out.rare_rows), r)
            out.rare_rows = [x for x, k in zip(out.rare_rows, keep.tolist(), strict=True) if k]
            out.rare_bytes = [x for x, k in zip(out.rare_bytes, keep.tolist(), strict=True) if k]
        cols["outer_ip_len"][r] = cols["ip_len"][r]
        cols["encap"][r] = kind
        for name in ("sport", "dport", "payload_len", "status"):
            cols[name][r] = 0
        return r

    if vx.any() or gen.any():
        mark(vx, ENC_VXLAN)
        mark(gen, ENC_GENEVE)
        eth_sel = vx | gen
        inner_rows = rows[eth_sel]
        l3, et = _ethernet(rd, out, inner_rows, np.where(vx, l4 + 16, l4 + 8 + gen_hdr)[eth_sel])
        _network(rd, out, inner_rows, l3, et, sack, depth=1)
    if gre.any():
        g_rows, g_off = rows[gre], l4[gre]
        f = rd.u8(g_off, np.ones(len(g_rows), bool))
        ptype = rd.u16(g_off + 2, np.ones(len(g_rows), bool))
        hdr = 4 + 4 * ((f & 0x80) > 0) + 4 * ((f & 0x20) > 0) + 4 * ((f & 0x10) > 0)
        known = np.isin(ptype, (ET_IPV4, ET_IPV6, 0x6558))
        g_rows, g_off, ptype, hdr = g_rows[known], g_off[known], ptype[known], hdr[known]
        if len(g_rows):
            mark(np.isin(rows, g_rows), ENC_GRE)
            eth = ptype == 0x6558
            if eth.any():
                l3, et = _ethernet(rd, out, g_rows[eth], g_off[eth] + hdr[eth])
                _network(rd, out, g_rows[eth], l3, et, sack, depth=1)
            ip = ~eth
            if ip.any():
                _network(rd, out, g_rows[ip], g_off[ip] + hdr[ip], ptype[ip], sack, depth=1)
    if teredo.any():
        r = mark(teredo, ENC_TEREDO)
        _network(rd, out, r, (l4 + teredo_hdr)[teredo], np.full(len(r), ET_IPV6), sack, depth=1)
    if l2tp.any():
        r = mark(l2tp, ENC_L2TP)
        _network(rd, out, r, l2tp_l3[l2tp], l2tp_et[l2tp], sack, depth=1)
    if ipip.any():
        r = mark(ipip, ENC_IPIP)
        et = np.where(proto[ipip] == PROTO_IPIP, ET_IPV4, ET_IPV6)
        _network(rd, out, r, l4[ipip], et, sack, depth=1)
