"""The network in use: which tunnel the captured traffic crossed, its overhead, and which platform it points to.

The ingest layer already decapsulates VXLAN (UDP 4789, 8472), Geneve (6081), GRE and IP-in-IP (column
`encap`, the outer IP length kept in `outer_ip_len`), so the overhead of those is *measured* here: outer
length - inner length, per packet. WireGuard is encrypted and stays a UDP packet: it is recognised by its
port and its message sizes (fixed handshake sizes, data padded to 16 bytes) and its overhead is the
protocol's fixed one. Interface names of a pcapng capture (`vxlan.calico`, `flannel.1`, `cilium_vxlan`,
...) name the CNI itself: the only capture evidence strong enough to call the platform Kubernetes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from ..ingest.capture import Capture

# Bytes each encapsulation adds, by outer IP version: VXLAN = outer IP + 8 UDP + 8 VXLAN + 14 inner Ethernet
# (RFC 7348); Geneve the same with no options (RFC 8926 3.4, options add 4-byte multiples); GRE = outer IP +
# 4 (RFC 2784; +4 each for key and sequence, RFC 2890); IP-in-IP = outer IP (RFC 2003); WireGuard = outer IP
# + 8 UDP + 32 (4 type, 4 receiver index, 8 counter, 16 Poly1305 tag).
NOMINAL = {
    ("vxlan", 4): 50,
    ("vxlan", 6): 70,
    ("geneve", 4): 50,
    ("geneve", 6): 70,
    ("gre", 4): 24,
    ("gre", 6): 44,
    ("ipip", 4): 20,
    ("ipip", 6): 40,
    ("wireguard", 4): 60,
    ("wireguard", 6): 80,
}
WORDS = {"vxlan": "VXLAN", "geneve": "Geneve", "gre": "GRE", "ipip": "IP-in-IP", "wireguard": "WireGuard"}
# 51820: WireGuard's customary port and Calico's IPv4 default; 51821 Calico's IPv6; 51871 Cilium's
WIREGUARD_PORTS = (51820, 51821, 51871)
# WireGuard message type -> the UDP payload size of that message (data messages vary: 32 + 16*k)
WIREGUARD_SIZES = {1: 148, 2: 92, 3: 64}

# Devices that only a CNI creates (the name tcpdump -i / dumpcap wrote into the pcapng file): strong evidence
CNI_DEVICES = {
    "vxlan.calico": ("calico", "vxlan"),
    "vxlan-v6.calico": ("calico", "vxlan"),
    "wireguard.cali": ("calico", "wireguard"),
    "wg-v6.cali": ("calico", "wireguard"),
    "flannel.1": ("flannel", "vxlan"),
    "flannel-v6.1": ("flannel", "vxlan"),
    "flannel-wg": ("flannel", "wireguard"),
    "cilium_vxlan": ("cilium", "vxlan"),
    "cilium_geneve": ("cilium", "geneve"),
    "cilium_wg0": ("cilium", "wireguard"),
    "cilium_host": ("cilium", ""),
    "ovn-k8s-mp0": ("ovn-kubernetes", "geneve"),
    "weave": ("weave", "vxlan"),
    "vxlan-6784": ("weave", "vxlan"),
}
CNI_PREFIXES = {"cali": ("calico", ""), "lxc": ("cilium", "")}  # pod veths: calixxxxxxxxxxx, lxcxxxxxxxx


@dataclass(frozen=True)
class Overlay:
    """One encapsulation seen in a capture."""

    kind: str  # vxlan, geneve, gre, ipip, wireguard
    capture: str  # role of the capture it was seen in
    packets: int  # packets carried in it
    overhead: int  # bytes it adds: measured (median outer - inner length) or the protocol's fixed size
    measured: bool  # True when `overhead` comes from the packets' own lengths
    outer_ipv: int  # 4 or 6 (WireGuard: the UDP packet's; decapsulated kinds: from the measured overhead)
    carries_failing: bool  # the failing connection's server is reached through it (its inner packets)

    @property
    def words(self) -> str:
        return WORDS[self.kind]

    def to_dict(self) -> dict:
        return asdict(self)  # report.json's fix.network.overlay: every field, in this order


@dataclass(frozen=True)
class Cni:
    """A CNI named by a capture's interface name."""

    name: str  # calico, cilium, flannel, weave, ovn-kubernetes
    encapsulation: str  # as the device says ("" when the device does not tell)
    device: str
    capture: str


def overlays(captures: dict[str, Capture], server_ip: str | None = None) -> list[Overlay]:
    """Every encapsulation the captures show, most packets first. `server_ip`: the failing connection's
    server, to tell whether its packets were inside the tunnel (their path MTU is then the inner one)."""
    found: list[Overlay] = []
    for role, cap in captures.items():
        p = cap.packets
        if not len(p) or "encap" not in p:
            continue
        is_kind = _matcher(p["encap"])
        for kind in ("vxlan", "geneve", "gre", "ipip"):
            rows = is_kind(kind)
            if not rows.any():
                continue
            extra = p["outer_ip_len"].to_numpy()[rows].astype(np.int64) - p["ip_len"].to_numpy()[rows]
            extra = extra[extra > 0]
            overhead = int(np.median(extra)) if len(extra) else NOMINAL[(kind, 4)]
            outer = 6 if len(extra) and overhead >= NOMINAL[(kind, 6)] else 4
            carries = bool(server_ip) and bool(
                ((p["src"].to_numpy()[rows] == server_ip) | (p["dst"].to_numpy()[rows] == server_ip)).any()
            )
            found.append(Overlay(kind, role, int(rows.sum()), overhead, bool(len(extra)), outer, carries))
        wg = _wireguard(p)
        if wg.any():
            ipv = int(np.bincount(p["ipv"].to_numpy()[wg].astype(np.int64)).argmax())
            found.append(
                Overlay("wireguard", role, int(wg.sum()), NOMINAL[("wireguard", ipv)], False, ipv, False)
            )
    return sorted(found, key=lambda o: -o.packets)


def _matcher(column: pd.Series):
    """kind -> a mask of the rows whose value is that kind. The packets' `encap` is a categorical: its codes
    are compared, not a text per packet (a million of them took ~0.1 s)."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        codes = column.cat.codes.to_numpy()
        names = [str(c) for c in column.cat.categories]
        return lambda kind: np.isin(codes, [i for i, name in enumerate(names) if name == kind])
    text = column.astype(str).to_numpy()
    return lambda kind: text == kind


def _wireguard(p) -> np.ndarray:
    """UDP packets on a WireGuard port whose size is a WireGuard message's (WireGuard paper, section 5.4):
    handshake initiation 148 bytes, response 92, cookie reply 64, data 32 + a multiple of 16 (16 bytes of
    header, the plaintext padded to 16, the 16-byte tag). The type byte is not used: the decoder keeps the
    first payload byte of TCP only."""
    out = np.zeros(len(p), dtype=bool)
    udp = np.flatnonzero(p["proto"].to_numpy() == 17)  # the few rows worth testing, in a capture of TCP
    port = np.isin(p["sport"].to_numpy()[udp], WIREGUARD_PORTS) | np.isin(
        p["dport"].to_numpy()[udp], WIREGUARD_PORTS
    )
    size = p["payload_len"].to_numpy()[udp].astype(np.int64)
    layout = np.isin(size, list(WIREGUARD_SIZES.values())) | ((size >= 32) & ((size - 32) % 16 == 0))
    out[udp] = port & layout
    return out


def cnis(captures: dict[str, Capture]) -> list[Cni]:
    """CNIs named by the interfaces the captures were taken on (pcapng records their names)."""
    found = []
    for role, cap in captures.items():
        for iface in cap.interfaces:
            name = str(iface.get("name") or "")
            hit = CNI_DEVICES.get(name) or next(
                (
                    v
                    for pre, v in CNI_PREFIXES.items()
                    # the CNI's own names: a prefix and letters or digits (a capture's name is untrusted text)
                    if name.startswith(pre) and len(name) == 15 and name.isascii() and name.isalnum()
                ),
                None,
            )
            if hit:
                found.append(Cni(hit[0], hit[1], name, role))
    return found
