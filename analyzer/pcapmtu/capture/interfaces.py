"""The interfaces on the way out of a container, and their MTUs: the container's interface, its veth peer on
the host, the bridge that peer is a port of (docker0 or br-...), and the host's uplink to the target.

Read through netlink (`ip -json -details link`) in each namespace, never from /sys/class/net: sysfs shows the
namespace of whoever mounted it, so `nsenter --net ... cat /sys/class/net/eth0/mtu` reads the host's eth0.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import asdict, dataclass

from ..errors import CaptureFailed
from .namespaces import Namespace, last_said, run_tool

IP_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Interface:
    """One interface on the way, as recorded in the metadata (`interfaces[]`, docs/capturing.md)."""

    role: str  # container, veth, bridge or uplink
    namespace: str  # "container" (the captured namespace) or "host" (where pcapmtu runs)
    name: str
    mtu: int
    kind: str  # veth, bridge, vxlan, ...; "" for a plain device
    ifindex: int

    def as_dict(self) -> dict:
        return asdict(self)


def _ip_json(cmd: list[str]) -> list[dict]:
    proc = run_tool(cmd, IP_TIMEOUT_S, " ".join(cmd))
    if proc.returncode != 0:
        raise CaptureFailed(f"{' '.join(cmd)} failed: {last_said(proc)}")
    try:
        return json.loads(proc.stdout or "[]")
    except json.JSONDecodeError:
        raise CaptureFailed(f"{' '.join(cmd)}: output is not JSON (iproute2 too old for -json?)") from None


def links(ns: Namespace | None) -> list[dict]:
    """`ip -json -details link show` in `ns` (None: the host's namespace, where pcapmtu runs)."""
    cmd = ["ip", "-json", "-details", "link", "show"]
    return _ip_json(ns.run(cmd) if ns else cmd)


def link_type(ns: Namespace | None, iface: str) -> str | None:
    """The `ip link` type of an interface (ether, none for a tunnel, ...): "" for `any`, None when unknown
    (no such interface: tcpdump will say so in its own words)."""
    if iface == "any":
        return ""
    cmd = ["ip", "-json", "link", "show", "dev", iface]
    try:
        found = _ip_json(ns.run(cmd) if ns else cmd)
    except CaptureFailed:
        return None
    return str(found[0].get("link_type", "")) if found else None


def uplink_to(target: str | None) -> str:
    """The host's interface of the route to `target` (`ip route get`), or of the default route."""
    if target:
        try:
            ipaddress.ip_address(target)
        except ValueError:
            raise CaptureFailed(f"--target {target}: an IP address") from None
        routes = _ip_json(["ip", "-json", "route", "get", target])
        if routes and routes[0].get("dev"):
            return str(routes[0]["dev"])
        raise CaptureFailed(f"the host has no route to {target}: give the uplink with --host-iface IFACE")
    for family in ("-4", "-6"):
        for route in _ip_json(["ip", "-json", family, "route", "show", "default"]):
            if route.get("dev"):
                return str(route["dev"])
    raise CaptureFailed(
        "the host has no default route: give the uplink with --host-iface IFACE or --target ADDR"
    )


def survey(ns: Namespace, container_iface: str, uplink: str) -> list[Interface]:
    """Every interface on the way, in path order. The veth peer and its bridge are found through the
    container interface's peer index (iflink) and only when that peer lives in the host's namespace (Docker's
    default bridge, user-defined bridges); other set-ups (macvlan, a routed CNI) record what exists."""
    inside = {str(link.get("ifname")): link for link in links(ns)}
    host = links(None)
    by_name = {str(link.get("ifname")): link for link in host}
    if container_iface not in inside:
        names = ", ".join(sorted(n for n in inside if n != "lo")) or "none but lo"
        raise CaptureFailed(f"no interface {container_iface} in the container's namespace (it has: {names})")
    own = inside[container_iface]
    found = [_interface("container", "container", own)]
    peer = _veth_peer(own, host)
    if peer is not None:
        found.append(_interface("veth", "host", peer))
        master = by_name.get(str(peer.get("master", "")))
        if master is not None:
            found.append(_interface("bridge", "host", master))
    if uplink in by_name:
        found.append(_interface("uplink", "host", by_name[uplink]))
    return found


def _veth_peer(own: dict, host: list[dict]) -> dict | None:
    """The host's end of the container's veth: its ifindex is the container end's peer index, and its own
    peer index points back (both checked: indexes are only unique within one namespace)."""
    if _kind(own) != "veth" or "link_index" not in own:
        return None
    for link in host:
        points_back = link.get("link_index") == own.get("ifindex")
        if link.get("ifindex") == own["link_index"] and points_back and _kind(link) == "veth":
            return link
    return None


def _kind(link: dict) -> str:
    return str((link.get("linkinfo") or {}).get("info_kind", ""))


def _interface(role: str, namespace: str, link: dict) -> Interface:
    return Interface(
        role, namespace, str(link["ifname"]), int(link["mtu"]), _kind(link), int(link["ifindex"])
    )
