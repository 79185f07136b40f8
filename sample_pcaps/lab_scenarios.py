"""Scenario catalog of the pcapmtu lab: topology knobs, client flows, and the checks each capture must pass.

Data only (no root, no processes): lab.py builds and runs a Scenario, tests/test_lab_facts.py re-evaluates
the checks recorded in truth.json. A check is a tshark display filter with a frame-count bound, or a fact
of lab_oracle.measure() that must equal a value.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field

from netns_kit import ALLOWED_RANGES, allowed

NAMES = {"api": "api.example", "jenkins": "jenkins-updates.example"}
VERDICTS = ("mtu_blackhole", "mtu_blackhole_recovered", "healthy", "not_mtu", "inconclusive")
NOT_MTU_REASONS = ("filtered", "refused", "lossy_link", "server_slow")
IPV4_TCP_OVERHEAD = 40  # IPv4 + TCP headers without options: MSS = MTU - 40 (RFC 879)
IPV6_TCP_OVERHEAD = 60
IPV6_HEADER = 40
UNCLAMPED = 1500  # Ethernet MTU everywhere the scenario does not narrow it
MTU_VERDICTS = ("mtu_blackhole", "mtu_blackhole_recovered")
# Derived variants (lab_derive.py): host.pcap with every timestamp moved by this much (a host clock that is
# off by 1 h 2 min 3.25 s), and container.pcap cut so that the hanging connection starts mid-stream.
HOST_SHIFT_S = 3723.25
DERIVED = {"host_shifted": "host", "container_midstream": "container"}  # derived variant -> its source


class CatalogError(ValueError):
    """An unknown scenario or an address outside the allowed ranges."""


@dataclass(frozen=True)
class Plan:
    """Address plan. Defaults mirror a Docker host: 172.17.0.0/16 bridge, NATed to an uplink."""

    container_net: ipaddress.IPv4Network = ipaddress.ip_network("172.17.0.0/16")
    uplink_net: ipaddress.IPv4Network = ipaddress.ip_network("10.66.0.0/24")
    internet_net: ipaddress.IPv4Network = ipaddress.ip_network("198.18.0.0/24")
    container_net6: ipaddress.IPv6Network = ipaddress.ip_network("fd00:17::/64")
    uplink_net6: ipaddress.IPv6Network = ipaddress.ip_network("fd00:66::/64")
    internet_net6: ipaddress.IPv6Network = ipaddress.ip_network("fd00:18::/64")
    http_port: int = 80
    https_port: int = 443

    def validate(self) -> None:
        for net in (self.container_net, self.uplink_net, self.internet_net):
            if net.prefixlen > 25:
                raise CatalogError(f"{net}: subnets must be /25 or larger")
        for net in self.networks():
            if not allowed(net, loopback=False):  # a link's subnet: loopback makes no sense there
                ranges = ", ".join(map(str, ALLOWED_RANGES))
                raise CatalogError(f"{net} is outside the lab's address ranges ({ranges})")

    def networks(self) -> list:
        return [
            self.container_net,
            self.uplink_net,
            self.internet_net,
            self.container_net6,
            self.uplink_net6,
            self.internet_net6,
        ]

    def addresses(self, vxlan: bool = False) -> dict[str, str]:
        """Every address by role; "/len" suffixes where an interface needs one."""
        c, s, c6, u6, s6 = (
            self.container_net,
            self.internet_net,
            self.container_net6,
            self.uplink_net6,
            self.internet_net6,
        )
        # With VXLAN the uplink subnet is split: lower half = overlay, upper half = underlay.
        overlay, underlay = self.uplink_net.subnets(prefixlen_diff=1) if vxlan else (self.uplink_net, None)
        addrs = {
            "docker0": f"{c[1]}/{c.prefixlen}",
            "container": f"{c[2]}/{c.prefixlen}",
            "router_uplink": f"{overlay[1]}/{overlay.prefixlen}",
            "host_uplink": f"{overlay[2]}/{overlay.prefixlen}",
            "router_internet": f"{s[1]}/{s.prefixlen}",
            "api": f"{s[10]}/{s.prefixlen}",
            "jenkins": f"{s[11]}/{s.prefixlen}",
            "dns": f"{s[53]}/{s.prefixlen}",
            "docker0_6": f"{c6[1]}/{c6.prefixlen}",
            "container_6": f"{c6[2]}/{c6.prefixlen}",
            "router_uplink_6": f"{u6[1]}/{u6.prefixlen}",
            "host_uplink_6": f"{u6[2]}/{u6.prefixlen}",
            "router_internet_6": f"{s6[1]}/{s6.prefixlen}",
            "api_6": f"{s6[0x10]}/{s6.prefixlen}",
            "jenkins_6": f"{s6[0x11]}/{s6.prefixlen}",
            "dns_6": f"{s6[0x53]}/{s6.prefixlen}",
        }
        if underlay is not None:
            addrs["router_underlay"] = f"{underlay[1]}/{underlay.prefixlen}"
            addrs["host_underlay"] = f"{underlay[2]}/{underlay.prefixlen}"
        return addrs


def bare(addr: str) -> str:
    return addr.split("/")[0]


@dataclass(frozen=True)
class Flow:
    """One curl run. `expected`: failed (nonzero exit), succeeded, or slow (succeeded after >= 2 s).

    With `more_paths` or `hold_open` the flow is one keep-alive connection of lab_client.py instead (curl
    cannot pause between the requests of one connection): `path`, then each of `more_paths`, with
    `pause_s` of idle time before each further request; a `hold_open` connection stays open and idle past
    the end of the captures.
    """

    name: str
    client: str  # "container" | "host"
    scheme: str  # "http" | "https"
    path: str = "/"
    host: str = NAMES["api"]
    upload_bytes: int = 0
    expected: str = "succeeded"
    max_time: float | None = None  # None: the lab's --curl-timeout
    more_paths: tuple[str, ...] = ()
    pause_s: float = 0.0
    hold_open: bool = False

    @property
    def keepalive(self) -> bool:
        return bool(self.more_paths) or self.hold_open


@dataclass(frozen=True)
class Check:
    """Either `filter` with min/max frame counts, or `fact` (dotted path in the capture's facts) == `equals`."""

    capture: str  # "container" | "host" | "server" | a derived variant ("container_midstream")
    why: str
    filter: str | None = None
    min: int | None = None
    max: int | None = None
    fact: str | None = None
    equals: object = None


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    conclusion: str  # what the analyzer should conclude, in one or two sentences
    verdict: str
    flows: tuple[Flow, ...]
    checks: Callable[[Scenario, Plan], list[Check]]
    not_mtu_reason: str | None = None
    host_mtu: int = 1450  # dockerhost uplink (the VM's overlay NIC)
    router_host_mtu: int | None = None  # router side of that link; None = host_mtu
    container_mtu: int = UNCLAMPED  # container eth0, its veth peer and docker0
    route_mtu_to_server: int | None = None  # a narrow hop beyond the router, as a route MTU
    route_mtu_to_host: int | None = None
    drop_icmp: bool = True  # router drops the ICMP frag-needed / packet-too-big it generates
    clamp: str | None = None  # None | "set-mss" | "pmtu"
    clamp_mss: int = 1410
    tls_version: str = "1.3"
    ipv6: bool = False
    vxlan: bool = False
    offloads: bool = False  # True: leave TSO/GSO on and turn GRO on (captures show super-packets)
    server_mtu_probing: bool = False  # RFC 4821 packetization-layer PMTUD on the server
    https_listener: bool = True
    router_drop_https_syn: bool = False
    loss_probability: float = 0.0
    host_capture: str = "uplink"  # "uplink" | "any" (tcpdump -i any) | "any_sll" (-y LINUX_SLL)
    capture_format: str = "pcap"  # "pcap" | "pcap-nsec" | "pcapng"
    pings: bool = False
    server_capture: bool = False  # also tcpdump in the servers' namespace, on its link to the router
    server_drop_icmp: bool = False  # the server's own INPUT firewall drops ICMP frag-needed / packet-too-big
    server_keepalive: bool = False  # the web server keeps connections open (lab_server.py --keep-alive)
    derive: tuple[str, ...] = ()  # derived variants written after the run (keys of DERIVED)
    # analyses: False where no capture pins the path MTU (nothing of the narrow size arrives, no ICMP says
    # it); the analyzer may then leave it open, but must not name another number.
    path_mtu_evident: bool = True
    healthy_path_mtu: bool = False  # a healthy verdict that still knows the path MTU (from ICMP)
    # False where the server's own capture cannot show the failure (an upload whose full-size segments die
    # before the server: it sees a handshake and silence); analyses then accept healthy at no more than 50 %
    server_sees_failure: bool = True
    # A failed verification is retried once: on a busy 2-core machine a spurious RTO can break a timing
    # check. Scenarios whose effect is random (loss) get more attempts. Retries are printed and recorded.
    attempts: int = 2
    tags: tuple[str, ...] = field(default_factory=tuple)

    @property
    def narrow_mtu(self) -> int:
        """The MTU of the narrowest hop between the server and the container."""
        hops = [self.host_mtu, self.router_host_mtu or self.host_mtu, self.container_mtu]
        hops += [m for m in (self.route_mtu_to_host,) if m]
        return min(hops)

    @property
    def tcp_overhead(self) -> int:
        return IPV6_TCP_OVERHEAD if self.ipv6 else IPV4_TCP_OVERHEAD

    @property
    def path_mtu(self) -> int:
        """The narrowest hop between the host and the server, either direction (the container excluded)."""
        hops = [self.host_mtu, self.router_host_mtu or self.host_mtu, UNCLAMPED]
        return min(hops + [m for m in (self.route_mtu_to_server, self.route_mtu_to_host) if m])

    @property
    def captures(self) -> tuple[str, ...]:
        return ("container", "host", "server") if self.server_capture else ("container", "host")


# --- how the analyzer is run on a scenario's files, and what it must conclude ---------------------------

VANTAGE = {"container": "client", "host": "middle", "server": "server"}


def analyses(s: Scenario) -> list[dict]:
    """truth.json `analyses`: one entry per way of running the analyzer on this scenario's captures."""
    mtu = s.path_mtu if (s.verdict in MTU_VERDICTS or s.healthy_path_mtu) else None

    def entry(inputs: dict, files: dict[str, str], **extra) -> dict:
        out = {
            "inputs": inputs,
            "expected_verdict": s.verdict,
            "not_mtu_reason": s.not_mtu_reason,
            "path_mtu": mtu,
        }
        if mtu is not None and not s.path_mtu_evident:
            out["path_mtu_evident"] = False
        out["vantage"] = {file: VANTAGE[role] for file, role in files.items()}
        return out | extra

    pair = {"host": "host.pcap", "container": "container.pcap"}
    entries = [entry(pair, {"host.pcap": "host", "container.pcap": "container"})]
    # each side alone: the client's side may leave the path MTU as a bracket (nothing of the narrow size
    # reaches it), never name another number
    alone = {"path_mtu_evident": False} if mtu is not None else {}
    entries += [
        entry({"container": "container.pcap"}, {"container.pcap": "container"}, **alone),
        entry({"host": "host.pcap"}, {"host.pcap": "host"}),
    ]
    if s.server_capture:
        blind = {}
        if not s.server_sees_failure:
            # nothing about sizes reaches the server: no MTU verdict, and no confident "healthy" either
            blind = {"expected_verdict": None, "acceptable_verdicts": ["healthy", "inconclusive"],
                     "healthy_confidence_at_most": 0.5, "path_mtu": None}  # fmt: skip
        entries += [
            entry({"server": "server.pcap"}, {"server.pcap": "server"}, **blind),
            entry(
                {"container": "container.pcap", "server": "server.pcap"},
                {"container.pcap": "container", "server.pcap": "server"},
            ),
            entry({"captures": ["server.pcap"]}, {"server.pcap": "server"}, **blind),
            entry(
                {"host": "host.pcap", "container": "container.pcap", "server": "server.pcap"},
                {"host.pcap": "host", "container.pcap": "container", "server.pcap": "server"},
            ),
        ]
    if "host_shifted" in s.derive:
        entries.append(
            entry(
                {"host": "host_shifted.pcap", "container": "container.pcap"},
                {"host_shifted.pcap": "host", "container.pcap": "container"},
                clock_offset_s=HOST_SHIFT_S,
            )
        )
    if "container_midstream" in s.derive:
        # The handshake is gone, so the MSS is unknown: a black hole may still be recognised from the
        # retransmitted data, or the analyzer may say it cannot tell; it must never call the capture healthy.
        midstream = entry(
            {"container": "container_midstream.pcap"}, {"container_midstream.pcap": "container"}
        )
        midstream |= {
            "expected_verdict": None,
            "not_healthy": True,
            "acceptable_verdicts": ["mtu_blackhole", "inconclusive"],
            "path_mtu": None,
        }
        midstream.pop("path_mtu_evident", None)
        entries.append(midstream)
    return entries


# --- check builders -------------------------------------------------------------------------------------


def _not_icmp(s: Scenario) -> str:
    return "!icmpv6" if s.ipv6 else "!icmp"


def _len(s: Scenario, op: str, total: int, layer: int = 0) -> str:
    """Filter on the IP total length; `layer` picks the n-th IP header (2 = inside VXLAN)."""
    suffix = f"#{layer}" if layer else ""
    if s.ipv6:
        return f"ipv6.plen{suffix}{op}{total - IPV6_HEADER}"  # plen excludes the fixed header
    return f"ip.len{suffix}{op}{total}"


def syn(port: int, mss: int | None = None, op: str = "==", reply: bool = False) -> str:
    base = (
        f"tcp.flags.syn==1 && tcp.flags.ack=={int(reply)} && tcp.{'srcport' if reply else 'dstport'}=={port}"
    )
    return base if mss is None else f"{base} && tcp.options.mss_val{op}{mss}"


def from_server(
    s: Scenario, port: int, op: str | None = None, total: int | None = None, layer: int = 0
) -> str:
    f = f"tcp.srcport=={port} && {_not_icmp(s)}"
    return f if op is None else f"{f} && {_len(s, op, total, layer)}"


def to_server(s: Scenario, port: int, op: str | None = None, total: int | None = None) -> str:
    f = f"tcp.dstport=={port} && {_not_icmp(s)}"
    return f if op is None else f"{f} && {_len(s, op, total)}"


def frag_needed(mtu: int | None = None) -> str:
    return "icmp.type==3 && icmp.code==4" + ("" if mtu is None else f" && icmp.mtu=={mtu}")


def ptb(mtu: int | None = None) -> str:
    return "icmpv6.type==2" + ("" if mtu is None else f" && icmpv6.mtu=={mtu}")


def _port(p: Plan, scheme: str) -> int:
    return p.https_port if scheme == "https" else p.http_port


def blackhole_checks(scheme: str) -> Callable[[Scenario, Plan], list[Check]]:
    """Download black hole of the incident: full-size server segments never reach the host or container."""

    def build(s: Scenario, p: Plan) -> list[Check]:
        port, narrow = _port(p, scheme), s.narrow_mtu
        mss_container, mss_host = s.container_mtu - s.tcp_overhead, s.host_mtu - s.tcp_overhead
        mss_server = UNCLAMPED - s.tcp_overhead
        icmp_err = ptb() if s.ipv6 else frag_needed()
        layer = 2 if s.vxlan else 0
        checks = [
            Check(
                "container", "container's SYN advertises its own 1500-MTU MSS", syn(port, mss_container), 1
            ),
            Check(
                "container", "server's SYN-ACK advertises the full MSS", syn(port, mss_server, reply=True), 1
            ),
            Check("container", "something from the server port did arrive", from_server(s, port), 1),
            Check(
                "container",
                f"no server packet larger than the {narrow}-byte path reached the container",
                from_server(s, port, ">", narrow),
                max=0,
            ),
            Check("host", "the container's SYN leaves the host unclamped", syn(port, mss_container), 1),
            Check("host", "the host's own SYN advertises the MSS of its uplink", syn(port, mss_host), 1),
            Check(
                "host",
                f"the host's own flow receives full {narrow}-byte packets",
                from_server(s, port, "==", narrow, layer),
                1,
            ),
            Check(
                "host",
                "nothing larger than the path MTU arrives",
                from_server(s, port, ">", narrow, layer),
                max=0,
            ),
            Check("host", "no ICMP frag-needed / packet-too-big reaches the host", icmp_err, max=0),
            Check(
                "container", "the router's ICMP never reaches the container", _icmp_from_router(s, p), max=0
            ),
        ]
        if s.vxlan:
            checks.append(Check("host", "host capture is VXLAN-encapsulated (UDP/4789)", "vxlan && tcp", 1))
        if s.pings:
            checks += [
                Check("container", "DF ping that fits the uplink is answered", "icmp.type==0", 1),
                Check(
                    "container",
                    "DF ping too large for the uplink draws frag-needed from the docker host",
                    f"{frag_needed(s.host_mtu)} && ip.src=={address(p, s, 'docker0')}",
                    1,
                ),
            ]
        if s.host_capture.startswith("any"):
            checks += [
                Check(
                    "host",
                    "-i any sees the container's own address (veth/docker0)",
                    _ip_is(s, p, "container"),
                    1,
                ),
                Check("host", "-i any also sees the NATed address (uplink)", _ip_is(s, p, "host_uplink"), 1),
            ]
        if s.server_capture:
            checks += _blackhole_server_checks(s, p, port)
        if "container_midstream" in s.derive:
            checks += [
                Check(
                    "container_midstream",
                    "the cut capture holds no handshake to the port (the hanging connection starts mid-stream)",
                    syn(port),
                    max=0,
                ),
                Check(
                    "container_midstream",
                    "...but the hanging connection's later packets from the server are kept",
                    from_server(s, port),
                    1,
                ),
                Check(
                    "container_midstream",
                    "...and the container's retransmissions or requests toward it",
                    to_server(s, port),
                    1,
                ),
            ]
        return checks

    return build


def _blackhole_server_checks(s: Scenario, p: Plan, port: int) -> list[Check]:
    """server.pcap of a download black hole: full-size segments leave and are never acknowledged."""
    full, router = UNCLAMPED, address(p, s, "router_internet")
    icmp = ptb() if s.ipv6 else frag_needed()
    checks = [
        Check("server", "the server sends full-size segments", from_server(s, port, "==", full), 1),
        Check(
            "server",
            "...and retransmits them: they are never acknowledged",
            f"tcp.analysis.retransmission && {from_server(s, port, '==', full)}",
            1,
        ),
        Check(
            "server",
            "the host's own SYN (MSS of its uplink) reaches the server",
            syn(port, s.host_mtu - s.tcp_overhead),
            1,
        ),
        Check(
            "server",
            "the host's own flow gets full path-MTU segments from the server",
            from_server(s, port, "==", s.path_mtu),
            1,
        ),
    ]
    if s.drop_icmp:
        checks.append(
            Check("server", "no ICMP frag-needed reaches the server (the router drops it)", icmp, max=0)
        )
    else:
        field = "ipv6.src" if s.ipv6 else "ip.src"
        checks += [
            Check(
                "server",
                f"the router's frag-needed (mtu {s.path_mtu}) does reach the server's interface",
                f"{ptb(s.path_mtu) if s.ipv6 else frag_needed(s.path_mtu)} && {field}=={router}",
                1,
            ),
            Check(
                "server",
                "the frag-needed quotes the server's own full-size segment",
                f"{frag_needed()} && tcp.srcport=={port} && ip.len#2=={full}",
                1,
            ),
        ]
    return checks


def address(p: Plan, s: Scenario, role: str) -> str:
    """The bare address of `role` in the scenario's IP version."""
    addrs = p.addresses(vxlan=s.vxlan)
    return bare(addrs.get(f"{role}_6", addrs[role]) if s.ipv6 else addrs[role])


def _ip_is(s: Scenario, p: Plan, role: str) -> str:
    field_name = "ipv6.addr" if s.ipv6 else "ip.addr"
    return f"{field_name}=={address(p, s, role)}"


def _icmp_from_router(s: Scenario, p: Plan) -> str:
    if s.ipv6:
        return f"{ptb()} && ipv6.src=={address(p, s, 'router_uplink')}"
    return f"{frag_needed()} && ip.src=={address(p, s, 'router_uplink')}"


def recovered_checks(s: Scenario, p: Plan) -> list[Check]:
    port, narrow = p.https_port, s.narrow_mtu
    return [
        Check(
            "container",
            "SYN-ACK advertises the full MSS",
            syn(port, UNCLAMPED - s.tcp_overhead, reply=True),
            1,
        ),
        Check("container", "no oversize packet ever arrives", from_server(s, port, ">", narrow), max=0),
        Check(
            "container",
            "after the stall the server sends smaller segments that do arrive (>= 20 data packets)",
            f"{from_server(s, port)} && tcp.len>0",
            20,
        ),
        Check(
            "container",
            "a stall of >= 1 s between server packets (black-hole detection by RTO)",
            f"{from_server(s, port)} && tcp.time_delta>=1",
            1,
        ),
        Check("host", "no ICMP frag-needed reaches the host", frag_needed(), max=0),
    ] + (
        [
            Check(
                "server", "the server's first flight is full-size", from_server(s, port, "==", UNCLAMPED), 1
            ),
            Check(
                "server",
                "after the stall it sends smaller data segments (MTU probing)",
                f"{from_server(s, port, '<', narrow)} && tcp.len>0",
                20,
            ),
            Check(
                "server",
                "a stall of >= 1 s in its sending (retransmission timeouts)",
                f"{from_server(s, port)} && tcp.time_delta>=1",
                1,
            ),
            Check("server", "no ICMP frag-needed reaches the server", frag_needed(), max=0),
        ]
        if s.server_capture
        else []
    )


def upload_checks(s: Scenario, p: Plan) -> list[Check]:
    port, narrow = p.http_port, s.route_mtu_to_server
    return [
        Check(
            "container",
            "SYN-ACK advertises the full MSS",
            syn(port, UNCLAMPED - s.tcp_overhead, reply=True),
            1,
        ),
        Check(
            "container",
            "the container sends full-size segments, again and again",
            to_server(s, port, ">", narrow),
            2,
        ),
        Check(
            "container",
            "tshark sees retransmissions toward the server",
            f"tcp.analysis.retransmission && tcp.dstport=={port}",
            1,
        ),
        Check("container", "no ICMP frag-needed ever comes back", frag_needed(), max=0),
        Check("host", "full-size segments leave the host uplink", to_server(s, port, ">", narrow), 2),
        Check("host", "no ICMP frag-needed reaches the host", frag_needed(), max=0),
        Check(
            "container",
            "downloads are fine: full-size packets from the server",
            from_server(s, port, "==", UNCLAMPED),
            1,
        ),
    ] + (
        [
            Check(
                "server",
                f"no segment larger than the {narrow}-byte hop reaches the server",
                to_server(s, port, ">", narrow),
                max=0,
            ),
            Check("server", "the upload's first small segments (SYN, headers) do arrive", syn(port), 1),
            Check("server", "no ICMP frag-needed at the server", frag_needed(), max=0),
            Check(
                "server",
                "the server's downloads leave at full size",
                from_server(s, port, "==", UNCLAMPED),
                1,
            ),
        ]
        if s.server_capture
        else []
    )


def pmtud_checks(s: Scenario, p: Plan) -> list[Check]:
    narrow = s.route_mtu_to_server
    return [
        Check("host", f"the router's frag-needed (mtu {narrow}) reaches the host", frag_needed(narrow), 1),
        Check("container", "...and is forwarded (de-NATed) to the container", frag_needed(narrow), 1),
        Check(
            "container",
            "after PMTUD the container's upload segments fit",
            to_server(s, p.http_port, "==", narrow),
            1,
        ),
        Check(
            "container",
            "SYN-ACK still advertises the full MSS",
            syn(p.https_port, UNCLAMPED - s.tcp_overhead, reply=True),
            1,
        ),
        Check(
            "container",
            "downloads arrive at exactly the path MTU",
            from_server(s, p.http_port, "==", narrow),
            1,
        ),
        Check(
            "container",
            "nothing larger than the path MTU arrives",
            from_server(s, p.http_port, ">", narrow),
            max=0,
        ),
    ] + (
        [
            Check(
                "server",
                f"the router's frag-needed (mtu {narrow}) for the downloads reaches the server",
                f"{frag_needed(narrow)} && ip.src=={address(p, s, 'router_internet')}",
                1,
            ),
            Check(
                "server",
                "...drawn by the server's own full-size segment (quoted in the ICMP)",
                f"{frag_needed()} && ip.len#2=={UNCLAMPED}",
                1,
            ),
            Check(
                "server",
                f"after it the server sends {narrow}-byte segments",
                from_server(s, p.http_port, "==", narrow),
                1,
            ),
        ]
        if s.server_capture
        else []
    )


def clamp_checks(s: Scenario, p: Plan) -> list[Check]:
    """A fixed incident: every SYN crossing the uplink says at most the uplink's MSS; data flows at the path MTU."""
    uplink_mss = s.host_mtu - s.tcp_overhead
    mss = min(s.container_mtu - s.tcp_overhead, uplink_mss)
    if s.clamp == "set-mss":
        mss = min(mss, s.clamp_mss)
    full = mss + s.tcp_overhead  # IP length of a full segment (timestamps take their 12 bytes from the MSS)
    checks = [
        Check(
            "host",
            "every SYN leaving the host carries MSS <= uplink MTU - 40",
            syn(p.https_port, uplink_mss, ">"),
            max=0,
        ),
        Check("host", "...including port 80", syn(p.http_port, uplink_mss, ">"), max=0),
        Check("host", "SYNs with the clamped MSS cross the uplink", syn(p.https_port, mss), 1),
        Check(
            "container",
            f"downloads arrive in full {full}-byte packets",
            from_server(s, p.http_port, "==", full),
            1,
        ),
        Check("container", "nothing larger arrives", from_server(s, p.http_port, ">", full), max=0),
    ]
    if s.container_mtu < UNCLAMPED:
        checks += [
            Check("container", "the container's SYN advertises its lowered MTU", syn(p.https_port, mss), 1),
            Check("container", "no SYN with a larger MSS", syn(p.https_port, mss, ">"), max=0),
        ]
    else:
        mss_container, mss_server = s.container_mtu - s.tcp_overhead, UNCLAMPED - s.tcp_overhead
        checks += [
            Check("container", "the container's SYN still says 1460", syn(p.https_port, mss_container), 1),
            Check(
                "host",
                "the server's SYN-ACK says 1460 on the uplink",
                syn(p.https_port, mss_server, reply=True),
                1,
            ),
        ]
    if s.clamp == "set-mss":
        checks.append(
            Check(
                "container",
                "the rule also clamps the SYN-ACK on its way in",
                syn(p.https_port, mss, reply=True),
                1,
            )
        )
    return checks


def offload_checks(s: Scenario, p: Plan) -> list[Check]:
    return [
        Check(
            "container",
            "GSO/GRO super-packets larger than the MTU are captured",
            from_server(s, p.http_port, ">", UNCLAMPED),
            1,
        ),
        Check("host", "...on the host uplink too", from_server(s, p.https_port, ">", UNCLAMPED), 1),
        Check("container", "no ICMP frag-needed", frag_needed(), max=0),
    ]


def filtered_checks(s: Scenario, p: Plan) -> list[Check]:
    port = p.https_port
    return [
        Check("container", "the container retries its SYN", syn(port), 2),
        Check("container", "no SYN-ACK ever comes back", syn(port, reply=True), max=0),
        Check(
            "container",
            "no RST either (silently filtered)",
            f"tcp.srcport=={port} && tcp.flags.reset==1",
            max=0,
        ),
        Check("host", "the SYNs do leave the host", syn(port), 2),
        Check("container", "plain HTTP on the same server works", syn(p.http_port, reply=True), 1),
    ]


def refused_checks(s: Scenario, p: Plan) -> list[Check]:
    port = p.https_port
    return [
        Check(
            "container",
            "the server answers the SYN with RST",
            f"tcp.srcport=={port} && tcp.flags.reset==1",
            1,
        ),
        Check("container", "no SYN-ACK", syn(port, reply=True), max=0),
        Check("host", "the RST crosses the uplink", f"tcp.srcport=={port} && tcp.flags.reset==1", 1),
    ]


def lossy_checks(s: Scenario, p: Plan) -> list[Check]:
    port = p.http_port
    return [
        # data, not a FIN: one lost FIN is all a random 3 % may take, and it proves nothing about a link
        Check(
            "container",
            "data segments are lost and re-sent (two at least)",
            "tcp.analysis.retransmission && tcp.len>0",
            2,
        ),
        Check(
            "container", "full-size 1500-byte segments do arrive", from_server(s, port, "==", UNCLAMPED), 10
        ),
        Check("host", "retransmissions are visible at the host", "tcp.analysis.retransmission", 1),
        Check("host", "no ICMP frag-needed", frag_needed(), max=0),
    ]


def slow_checks(*slow_schemes: str) -> Callable[[Scenario, Plan], list[Check]]:
    """The server answers the requests of `slow_schemes` >= 3 s late; anything else promptly."""

    def build(s: Scenario, p: Plan) -> list[Check]:
        late = "tcp.len>0 && tcp.time_delta>=3"
        roles = ("container", "server") if s.server_capture else ("container",)
        checks = []
        for role in roles:
            for scheme in ("http", "https"):
                port = _port(p, scheme)
                if scheme in slow_schemes:
                    what = scheme.upper()
                    checks.append(
                        Check(
                            role,
                            f"the {what} answer comes >= 3 s after the request",
                            f"tcp.srcport=={port} && {late}",
                            1,
                        )
                    )
                else:
                    checks.append(
                        Check(
                            role,
                            f"the {scheme.upper()} answer is prompt",
                            f"tcp.srcport=={port} && {late}",
                            max=0,
                        )
                    )
                    checks.append(
                        Check(role, "...and it is answered", f"tcp.srcport=={port} && tcp.len>0", 1)
                    )
            checks += [
                Check(
                    role,
                    "the TLS handshake is prompt: ServerHello within 1 s of the SYN",
                    f"tcp.srcport=={p.https_port} && tls.handshake.type==2 && tcp.time_relative<1",
                    1,
                ),
                Check(
                    role,
                    "full-size TLS handshake packets",
                    from_server(s, p.https_port, "==", UNCLAMPED),
                    1,
                ),
                # No loss: at most a spurious RTO retransmission or two when the machine is busy.
                Check(role, "no loss: (almost) no retransmissions", "tcp.analysis.retransmission", max=2),
                Check(role, "no ICMP frag-needed", frag_needed(), max=0),
            ]
        return checks

    return build


def keepalive_checks(s: Scenario, p: Plan) -> list[Check]:
    """Busy but healthy: keep-alive connections with idle pauses, two of them still open at the end."""
    http, https = p.http_port, p.https_port
    checks = []
    for role in ("container", "host"):
        for port in (http, https):
            checks += [
                Check(role, f"two connections to port {port}", syn(port), 2, 2),
                Check(
                    role,
                    f"one of them is closed by the client (one FIN to {port}) ...",
                    f"tcp.flags.fin==1 && tcp.dstport=={port}",
                    1,
                    1,
                ),
                Check(
                    role,
                    "... and by the server in turn; the other stays open and idle",
                    f"tcp.flags.fin==1 && tcp.srcport=={port}",
                    1,
                    1,
                ),
            ]
        checks += [
            Check(role, "no RST", "tcp.flags.reset==1", max=0),
            Check(role, "no ICMP frag-needed", frag_needed(), max=0),
            Check(role, "no loss: (almost) no retransmissions", "tcp.analysis.retransmission", max=2),
        ]
    checks += [
        Check(
            "container",
            "several HTTP requests on one connection (keep-alive)",
            "http.request && http.prev_request_in",
            2,
        ),
        Check(
            "container",
            "the client pauses >= 1 s before its next request (HTTP)",
            f"http.request && tcp.dstport=={http} && tcp.time_delta>=1",
            2,
        ),
        Check(
            "container",
            "... and on the HTTPS connection (an encrypted request after >= 1 s of quiet)",
            f"tls.app_data && tcp.dstport=={https} && tcp.time_delta>=1",
            2,
        ),
        Check(
            "container",
            "full-size 1500-byte segments arrive over HTTP",
            from_server(s, http, "==", UNCLAMPED),
            1,
        ),
        Check(
            "container",
            "... and over HTTPS",
            from_server(s, https, "==", UNCLAMPED),
            1,
        ),
    ]
    return checks


def format_checks(
    base: Callable[[Scenario, Plan], list[Check]], host: dict[str, str], container: dict[str, str]
) -> Callable[[Scenario, Plan], list[Check]]:
    def build(s: Scenario, p: Plan) -> list[Check]:
        extra = [
            Check("host", f"host capture {k} is {v}", fact=f"format.{k}", equals=v) for k, v in host.items()
        ]
        extra += [
            Check("container", f"container capture {k} is {v}", fact=f"format.{k}", equals=v)
            for k, v in container.items()
        ]
        return base(s, p) + extra

    return build


# --- flows ----------------------------------------------------------------------------------------------

C_HTTP_SMALL = Flow("container_http_small", "container", "http", "/")
C_HTTPS_HANGS = Flow("container_https", "container", "https", "/", host=NAMES["jenkins"], expected="failed")
H_HTTPS = Flow("host_https", "host", "https", "/", host=NAMES["jenkins"])
C_HTTPS = Flow("container_https", "container", "https", "/", host=NAMES["jenkins"])
C_HTTP_BIG = Flow("container_http_big", "container", "http", "/big?bytes=60000")
C_UPLOAD = Flow("container_upload", "container", "http", "/upload", upload_bytes=60_000)
BLACKHOLE_FLOWS = (C_HTTP_SMALL, C_HTTPS_HANGS, H_HTTPS)
# Upload first: once a download has drawn ICMP frag-needed, the server caches PMTU 1450 for the host's address
# and its later SYN-ACKs advertise MSS 1410, so a later upload would never be too big.
FIXED_FLOWS = (C_UPLOAD, C_HTTPS, C_HTTP_BIG, H_HTTPS)

HEALTHY_NET = {"host_mtu": UNCLAMPED, "drop_icmp": False}
BLACKHOLE_CONCLUSION = (
    "MTU black hole: the container's SYN advertises MSS 1460, the server's full-size packets never reach "
    "the host (uplink MTU 1450) and no ICMP frag-needed comes back; the host's own SYN (MSS 1410) works. "
    "Fix: clamp MSS on the host (TCPMSS --set-mss 1410 / --clamp-mss-to-pmtu) or set the container MTU to 1450."
)


def _blackhole(name: str, description: str, checks, **options) -> Scenario:
    """The incident itself (container HTTPS hangs, host works), taken one way or another."""
    return Scenario(
        name, description, BLACKHOLE_CONCLUSION, "mtu_blackhole", BLACKHOLE_FLOWS, checks, **options
    )


def _catalog() -> list[Scenario]:
    bh = blackhole_checks("https")
    return [
        _blackhole(
            "blackhole_tls12",
            "The incident with TLS 1.2: container HTTPS hangs after the ClientHello, small HTTP works, the "
            "host's own HTTPS works; an engineer's DF pings at 1422 and 1472 bytes at the end.",
            bh,
            tls_version="1.2",
            pings=True,
            derive=("host_shifted", "container_midstream"),
        ),
        _blackhole(
            "blackhole_tls13",
            "The incident with TLS 1.3 (certificate in the encrypted flight): same symptoms as TLS 1.2; "
            "also captured on the server.",
            bh,
            pings=True,
            server_capture=True,
        ),
        Scenario(
            "blackhole_recovered",
            "Black hole, but the server runs packetization-layer PMTUD (tcp_mtu_probing=1, RFC 4821): after "
            "a stall of several RTOs it falls back to smaller segments and the download completes.",
            "MTU black hole recovered by the server's MTU probing: long stall, then segments smaller than the "
            "negotiated MSS. Transfers work but slowly; the same fix applies.",
            "mtu_blackhole_recovered",
            (
                C_HTTP_SMALL,
                Flow(
                    "container_https_big",
                    "container",
                    "https",
                    "/big?bytes=40000",
                    expected="slow",
                    max_time=20,
                ),
                H_HTTPS,
            ),
            recovered_checks,
            server_mtu_probing=True,
            server_capture=True,
        ),
        Scenario(
            "blackhole_http_large",
            "Plain HTTP through the black hole: the small page works, a 60 KB download from the container "
            "hangs, the host downloads the same URL.",
            BLACKHOLE_CONCLUSION,
            "mtu_blackhole",
            (
                C_HTTP_SMALL,
                Flow("container_http_big", "container", "http", "/big?bytes=60000", expected="failed"),
                Flow("host_http_big", "host", "http", "/big?bytes=60000"),
            ),
            blackhole_checks("http"),
            derive=("host_shifted", "container_midstream"),
        ),
        Scenario(
            "blackhole_upload",
            "Upload black hole: the container POSTs 60 KB. The host uplink is 1500 (so the host sends no "
            "ICMP itself); the narrow hop (MTU 1450, as a route MTU) is beyond the router toward the server "
            "and the router drops its frag-needed. Downloads work, uploads hang.",
            "MTU black hole in the client-to-server direction: the container's full-size segments are "
            "retransmitted without ever being acknowledged and no ICMP comes back. Fix: clamp MSS on the host.",
            "mtu_blackhole",
            (
                C_HTTP_SMALL,
                Flow("container_http_download", "container", "http", "/big?bytes=30000"),
                Flow(
                    "container_upload", "container", "http", "/upload", upload_bytes=60_000, expected="failed"
                ),
            ),
            upload_checks,
            host_mtu=UNCLAMPED,
            route_mtu_to_server=1450,
            server_capture=True,
            path_mtu_evident=False,  # nothing of 1450 bytes crosses, no ICMP says 1450: only "< 1500" shows
            server_sees_failure=False,
        ),
        Scenario(
            "fixed_clamp_setmss",
            "The incident fixed with `iptables -t mangle -A FORWARD -p tcp --tcp-flags SYN,RST SYN -j TCPMSS "
            "--set-mss 1410` on the host: the SYN leaves the container with MSS 1460 and crosses the uplink with 1410.",
            "Healthy: MSS clamping is in place (container MSS 1460 -> 1410 on the uplink); nothing is lost.",
            "healthy",
            FIXED_FLOWS,
            clamp_checks,
            clamp="set-mss",
        ),
        Scenario(
            "fixed_clamp_pmtu",
            "The incident fixed with TCPMSS --clamp-mss-to-pmtu on the host.",
            "Healthy: MSS clamped to the uplink's path MTU (1410).",
            "healthy",
            FIXED_FLOWS,
            clamp_checks,
            clamp="pmtu",
        ),
        Scenario(
            "fixed_container_mtu",
            "The incident fixed by giving the container (and docker0) MTU 1450: the container advertises MSS 1410.",
            "Healthy: container MTU matches the uplink.",
            "healthy",
            FIXED_FLOWS,
            clamp_checks,
            container_mtu=1450,
        ),
        Scenario(
            "pmtud_working",
            "Host uplink 1500, a 1450 hop beyond the router (both directions, as route MTUs); the router sends "
            "ICMP frag-needed. Downloads: the server lowers its PMTU (its ICMP is not in our captures); "
            "uploads: the ICMP (mtu 1450) crosses the host uplink and is de-NATed to the container.",
            "Healthy: PMTUD works (ICMP frag-needed with mtu 1450 seen, transfers complete at 1450 bytes).",
            "healthy",
            FIXED_FLOWS,
            pmtud_checks,
            host_mtu=UNCLAMPED,
            route_mtu_to_server=1450,
            route_mtu_to_host=1450,
            drop_icmp=False,
            server_capture=True,
            healthy_path_mtu=True,
        ),
        Scenario(
            "ipv6_blackhole",
            "The incident over IPv6 (fd00:: ULA, NAT66 masquerade on the host like Docker with ip6tables): "
            "MSS 1440 from the container, 1390 from the host; ICMPv6 packet-too-big dropped by the router.",
            "IPv6 MTU black hole (packet-too-big filtered).",
            "mtu_blackhole",
            BLACKHOLE_FLOWS,
            bh,
            ipv6=True,
        ),
        _blackhole(
            "vxlan_overlay",
            "The incident where the host uplink is a real VXLAN device (VNI 4242, UDP 4789) over a 1500 "
            "underlay veth; host.pcap is taken on the underlay, so every packet is VXLAN-encapsulated.",
            bh,
            vxlan=True,
        ),
        _blackhole(
            "any_sll2",
            "blackhole_tls13 with the host captured by `tcpdump -i any` (Linux cooked v2, LINUX_SLL2): each "
            "container packet appears on the veth, docker0 (pre-NAT) and the uplink (post-NAT).",
            format_checks(bh, {"encapsulation": "linux-sll2"}, {"encapsulation": "ether"}),
            host_capture="any",
        ),
        _blackhole(
            "sll_v1",
            "blackhole_tls13 with the host captured by `tcpdump -i any -y LINUX_SLL` (Linux cooked v1).",
            format_checks(bh, {"encapsulation": "linux-sll"}, {"encapsulation": "ether"}),
            host_capture="any_sll",
        ),
        _blackhole(
            "pcapng",
            "blackhole_tls13 captured with dumpcap (pcapng; the files keep the .pcap name).",
            format_checks(bh, {"file_type": "pcapng"}, {"file_type": "pcapng"}),
            capture_format="pcapng",
        ),
        _blackhole(
            "nanosecond",
            "blackhole_tls13 captured with `tcpdump --time-stamp-precision=nano` (pcap, nanosecond magic).",
            format_checks(
                bh,
                {"file_type": "nsecpcap", "time_precision": "nanoseconds"},
                {"file_type": "nsecpcap", "time_precision": "nanoseconds"},
            ),
            capture_format="pcap-nsec",
        ),
        Scenario(
            "offload_artifact",
            "Healthy 1500-byte path with TSO/GSO left on and GRO turned on: captured packets are larger "
            "than the MTU (up to tens of KB) although nothing on the wire is.",
            "Healthy: oversize packets are capture artifacts of segmentation offload, not evidence of MTU trouble.",
            "healthy",
            (C_HTTP_BIG, Flow("container_https_big", "container", "https", "/big?bytes=60000")),
            offload_checks,
            offloads=True,
            **HEALTHY_NET,
        ),
        Scenario(
            "filtered_443",
            "Negative control: all MTUs 1500; the router silently drops TCP SYNs to port 443.",
            "Not MTU: the handshake never completes (SYNs unanswered); nothing to do with packet size.",
            "not_mtu",
            (C_HTTP_SMALL, Flow("container_https", "container", "https", "/", expected="failed")),
            filtered_checks,
            not_mtu_reason="filtered",
            router_drop_https_syn=True,
            **HEALTHY_NET,
        ),
        Scenario(
            "refused",
            "Negative control: all MTUs 1500; nothing listens on 443, the server kernel answers RST.",
            "Not MTU: connection refused (RST to the SYN).",
            "not_mtu",
            (C_HTTP_SMALL, Flow("container_https", "container", "https", "/", expected="failed")),
            refused_checks,
            not_mtu_reason="refused",
            https_listener=False,
            **HEALTHY_NET,
        ),
        Scenario(
            "lossy_link",
            "Negative control: all MTUs 1500; the router drops 3% of TCP packets at random (iptables "
            "statistic). Transfers succeed with retransmissions; full-size segments are delivered.",
            "Not MTU: random loss; retransmitted full-size segments do arrive.",
            "not_mtu",
            # 300 KB: ~200 data segments, so 3 % random loss takes two or more of them in all but ~1 % of runs
            (Flow("container_http_big", "container", "http", "/big?bytes=300000"), C_HTTPS),
            lossy_checks,
            not_mtu_reason="lossy_link",
            loss_probability=0.03,
            attempts=3,
            **HEALTHY_NET,
        ),
        Scenario(
            "slow_server",
            "Negative control: all MTUs 1500, no loss; the server waits 4 s before it answers (HTTP and HTTPS).",
            "Not MTU: the server is slow; the handshake and full-size packets are fine.",
            "not_mtu",
            (
                Flow("container_http_slow", "container", "http", "/slow?s=4", expected="slow"),
                Flow("container_https_slow", "container", "https", "/slow?s=4", expected="slow"),
            ),
            slow_checks("http", "https"),
            not_mtu_reason="server_slow",
            server_capture=True,
            **HEALTHY_NET,
        ),
        Scenario(
            "slow_tls_server",
            "Negative control: all MTUs 1500, no loss; HTTPS from the container: the TLS handshake is prompt, "
            "then the server waits 4 s after the HTTP request before it answers; a small HTTP page is prompt.",
            "Not MTU: the server is slow to answer inside TLS; the handshake and full-size packets are fine.",
            "not_mtu",
            (C_HTTP_SMALL, Flow("container_https_slow", "container", "https", "/slow?s=4", expected="slow")),
            slow_checks("https"),
            not_mtu_reason="server_slow",
            server_capture=True,
            **HEALTHY_NET,
        ),
        Scenario(
            "icmp_ignored",
            "The incident, but the router does send ICMP frag-needed (mtu 1450) and the server's own INPUT "
            "firewall drops it: tcpdump on the server sees the ICMP arrive while the server's TCP keeps "
            "sending full-size segments. Container HTTPS hangs, the host's own HTTPS works.",
            "MTU black hole: the path MTU is 1450 (the router says so in frag-needed that reaches the server's "
            "interface), but the server's firewall drops the ICMP, so it never lowers its segment size. Fix: "
            "clamp MSS on the docker host, or let ICMP type 3 code 4 in on the server.",
            "mtu_blackhole",
            BLACKHOLE_FLOWS,
            bh,
            drop_icmp=False,
            server_drop_icmp=True,
            server_capture=True,
        ),
        Scenario(
            "busy_keepalive",
            "Healthy 1500 path, busy client: keep-alive HTTP and HTTPS connections serve three requests each "
            "(one of 20 KB) with 1.5-2 s of idle time between them; two more connections get one answer each "
            "and are still open and idle when the captures stop.",
            "Healthy: idle pauses and connections left open are the client's doing; every request is answered "
            "promptly in full-size segments.",
            "healthy",
            (
                Flow(
                    "container_http_keepalive",
                    "container",
                    "http",
                    "/",
                    more_paths=("/big?bytes=20000", "/"),
                    pause_s=1.5,
                ),
                Flow(
                    "container_https_keepalive",
                    "container",
                    "https",
                    "/",
                    host=NAMES["jenkins"],
                    more_paths=("/big?bytes=20000", "/"),
                    pause_s=2.0,
                ),
                Flow("container_http_idle", "container", "http", "/", hold_open=True),
                Flow(
                    "container_https_idle", "container", "https", "/", host=NAMES["jenkins"], hold_open=True
                ),
            ),
            keepalive_checks,
            server_keepalive=True,
            **HEALTHY_NET,
        ),
    ]


SCENARIOS: dict[str, Scenario] = {s.name: s for s in _catalog()}


def get(name: str) -> Scenario:
    try:
        return SCENARIOS[name]
    except KeyError:
        raise CatalogError(f"unknown scenario {name!r}; known: {', '.join(SCENARIOS)}") from None
