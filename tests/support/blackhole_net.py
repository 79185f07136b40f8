"""The incident, for real, in network namespaces: a docker host whose uplink has MTU 1450, a router on that
1450-byte link that drops its own ICMP "fragmentation needed", and a server beyond it that sends full-size
segments (the lab's own server, sample_pcaps/lab_server.py). `pcapmtu capture` runs in the host namespace,
as a user runs it on the docker host.

    [container eth0 1500] --veth-- [docker0 1500]  host  [up0 1450] --- [rh 1450] router [ri] --- [sv] server
                                    MASQUERADE                       drops frag-needed       198.18.0.11 :80

The container side is either a plain namespace with a veth on a bridge named docker0 (`container=True`), or
what a real dockerd in the host namespace makes (tests/support/dockerd.py). Everything lives in namespaces
made through sample_pcaps/netns_kit.Resources, so one cleanup() removes it all; addresses are in the ranges
the project may use (172.17.0.0/16, 10.66.0.0/24, 198.18.0.0/15).
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from .environment import ROOT

sys.path.insert(0, str(ROOT / "sample_pcaps"))
from netns_kit import OFFLOADS_OFF, LabError, Resources  # noqa: E402

LAB_SERVER = ROOT / "sample_pcaps" / "lab_server.py"
PATH_MTU = 1450
CONTAINER_MTU = 1500
SERVER_IP = "198.18.0.11"
CONTAINER_IP = "172.17.0.2"
SERVER_IP6 = "fd00:18::11"  # with ipv6=True: the same path for IPv6, routed without NAT
CONTAINER_IP6 = "fd00:17::2"
UPLINK = "up0"  # the host's uplink in the host namespace
# The router's ICMP drop, as the lab does it (sample_pcaps/lab_run.py, drop_icmp)
MASQUERADE = f"iptables -t nat -A POSTROUTING -s 172.17.0.0/16 -o {UPLINK} -j MASQUERADE"  # what dockerd adds
DROP_FRAG_NEEDED = "iptables -A OUTPUT -p icmp --icmp-type fragmentation-needed -j DROP"
DROP_PACKET_TOO_BIG = "ip6tables -A OUTPUT -p icmpv6 --icmpv6-type packet-too-big -j DROP"


def require_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root: network namespaces, tcpdump (CI runs as root)")


@dataclass
class Blackhole:
    res: Resources
    host: str  # namespace names
    router: str
    server: str
    container: str | None  # the plain container namespace, when built here

    @property
    def url(self) -> str:
        return f"http://{SERVER_IP}/big?bytes=300000"

    def ns_path(self, name: str) -> str:
        return f"/run/netns/{name}"

    def remove(self) -> None:
        """Take the black hole out of a host namespace it shares (dockerd's) and delete the namespaces made
        for it. The uplink is deleted first, by hand: deleting the router's namespace frees its end of the
        veth only when the kernel's asynchronous netns cleanup runs, and a next build in the same host
        would meet `up0` still there ("RTNETLINK answers: File exists")."""
        self.res.execute(["ip", "-n", self.host, "link", "del", UPLINK], check=False)
        for ns in (self.router, self.server, self.container):
            if ns is not None:
                self.res.del_netns(ns)

    def in_host(self, cmd: list[str]) -> list[str]:
        """`cmd` run in the host namespace (as pcapmtu runs on a docker host)."""
        return ["nsenter", f"--net={self.ns_path(self.host)}", *cmd]

    def offloads_off(self, ns_path: str, dev: str) -> None:
        """Wire-sized packets in the captures (veths segment nothing otherwise: GSO/GRO super-packets)."""
        subprocess.run(
            ["nsenter", f"--net={ns_path}", "ethtool", "-K", dev, *OFFLOADS_OFF],
            capture_output=True,
            check=False,
        )


def build(
    res: Resources, workdir: Path, *, host: str | None = None, container: bool = True, ipv6: bool = False
) -> Blackhole:
    """The topology above. `host`: an existing namespace of `res` (where dockerd runs), else a new one.
    `ipv6`: IPv6 too (fd00::/8), the router dropping its ICMPv6 packet-too-big likewise."""
    rid = res.new_run_id()
    names = {role: f"{res.prefix}{rid}-{role}" for role in ("host", "router", "server", "ctr")}
    if host is None:
        res.add_netns(names["host"])
        host = names["host"]
    for role in ("router", "server") + (("ctr",) if container else ()):
        res.add_netns(names[role])
    router, server = names["router"], names["server"]
    res.veth(host, UPLINK, router, "rh")
    res.veth(router, "ri", server, "sv")
    res.link_up(host, UPLINK, PATH_MTU)
    res.link_up(router, "rh", PATH_MTU)
    res.link_up(router, "ri")
    res.link_up(server, "sv")
    res.addr(host, UPLINK, "10.66.0.2/24")
    res.addr(router, "rh", "10.66.0.1/24")
    res.addr(router, "ri", "198.18.0.1/24")
    res.addr(server, "sv", f"{SERVER_IP}/24")
    res.default_route(host, "10.66.0.1")
    res.default_route(server, "198.18.0.1")
    res.sysctl(host, "net.ipv4.ip_forward=1")
    res.sysctl(router, "net.ipv4.ip_forward=1")
    res.execute(DROP_FRAG_NEEDED.split(), ns=router)
    if ipv6:
        for ns, dev, cidr in ((host, UPLINK, "fd00:66::2/64"), (router, "rh", "fd00:66::1/64")):
            res.addr(ns, dev, cidr)
        res.addr(router, "ri", "fd00:18::1/64")
        res.addr(server, "sv", f"{SERVER_IP6}/64")
        res.default_route(host, "fd00:66::1")
        res.default_route(server, "fd00:18::1")
        res.ip(router, "-6", "route", "add", "fd00:17::/64", "via", "fd00:66::2")
        res.sysctl(host, "net.ipv6.conf.all.forwarding=1")
        res.sysctl(router, "net.ipv6.conf.all.forwarding=1")
        res.execute(DROP_PACKET_TOO_BIG.split(), ns=router)
    for ns, devs in ((host, (UPLINK,)), (router, ("rh", "ri")), (server, ("sv",))):
        for dev in devs:
            res.offloads(ns, dev, lenient=True)
    net = Blackhole(res, host, router, server, names["ctr"] if container else None)
    if container:
        ctr = names["ctr"]
        res.veth(ctr, "eth0", host, "vethpmc0")
        res.bridge(host, "docker0", "vethpmc0")
        res.link_up(ctr, "eth0", CONTAINER_MTU)
        res.link_up(host, "vethpmc0", CONTAINER_MTU)
        res.link_up(host, "docker0", CONTAINER_MTU)
        res.addr(ctr, "eth0", f"{CONTAINER_IP}/16")
        res.addr(host, "docker0", "172.17.0.1/16")
        res.default_route(ctr, "172.17.0.1")
        if ipv6:
            res.addr(ctr, "eth0", f"{CONTAINER_IP6}/64")
            res.addr(host, "docker0", "fd00:17::1/64")
            res.default_route(ctr, "fd00:17::1")
        res.execute(MASQUERADE.split(), ns=host)
        for ns, dev in ((ctr, "eth0"), (host, "vethpmc0"), (host, "docker0")):
            res.offloads(ns, dev, lenient=True)
    log = workdir / "server.log"
    with log.open("w") as fh:
        proc = res.spawn(
            server,
            [sys.executable, str(LAB_SERVER), "--http-port", "80", "--https-port", "0"],
            stdin=subprocess.DEVNULL,
            stdout=fh,
            stderr=fh,
            cwd=str(LAB_SERVER.parent),
        )
    res.wait_for(log, "ready", proc, "lab_server.py")
    return net


def wait_reachable(res: Resources, ns_path: str, address: str = SERVER_IP) -> None:
    """Small pings until the path answers (a new veth needs up to a second before it passes packets)."""
    for _ in range(10):
        ping = subprocess.run(
            ["nsenter", f"--net={ns_path}", "ping", "-n", "-c", "1", "-W", "1", address],
            capture_output=True,
            check=False,
        )
        if ping.returncode == 0:
            return
    raise LabError(f"{address} does not answer pings from {ns_path}: the test topology is broken")
