"""How pcapmtu names evidence, the same way in every stage: an endpoint, a service, and the Wireshark display
filters that select a connection, a set of frames or a `tcp.stream`. One definition, so that what the
terminal, the reports and the Wireshark check say match (and tests/test_filters_tshark.py runs them all)."""

from __future__ import annotations

from collections.abc import Iterable


def endpoint(ip, port) -> str:
    """address:port, with IPv6 addresses in brackets."""
    return endpoints([ip], [port])[0]


def service(flow) -> str:
    """How a person names the connection: 'api.example (198.18.0.10:443)'."""
    return services([flow.name], [flow.server_ip], [flow.server_port])[0]


def endpoints(ips: Iterable, ports: Iterable) -> list[str]:
    """endpoint() of each (address, port): a whole table's column at once."""
    return [
        f"[{ip}]:{port}" if ":" in str(ip) else f"{ip}:{port}" for ip, port in zip(ips, ports, strict=True)
    ]


def services(names: Iterable, ips: Iterable, ports: Iterable) -> list[str]:
    """service() of each connection, given its name, server address and port columns."""
    return named(names, endpoints(ips, ports))


def named(names: Iterable, servers: Iterable[str]) -> list[str]:
    """service() of each connection, given its name and its server's endpoint() already made."""
    return [f"{name} ({where})" if name else where for name, where in zip(names, servers, strict=True)]


def flow_filter(flow) -> str:
    """Wireshark display filter for one connection (both directions)."""
    ip = "ipv6" if ":" in str(flow.server_ip) else "ip"
    return (
        f"{ip}.addr=={flow.client_ip} && tcp.port=={flow.client_port} && "
        f"{ip}.addr=={flow.server_ip} && tcp.port=={flow.server_port}"
    )


def frames_filter(frames: Iterable) -> str:
    """A Wireshark display filter that selects exactly these frames ("" for none)."""
    values = sorted({int(x) for x in frames})
    # set members are comma-separated: Wireshark 4.0 and later reject the old space-separated form
    return "frame.number in {" + ", ".join(map(str, values)) + "}" if values else ""


def first_frames(frames: Iterable, limit: int = 12) -> tuple[int, ...]:
    """The frames a finding cites: the first `limit`, as plain ints."""
    return tuple(int(x) for x in list(frames)[:limit])


def stream_filter(tcp_stream: int) -> str:
    """`tcp.stream eq N`, or "" when Wireshark's stream number is unknown (-1)."""
    return f"tcp.stream eq {tcp_stream}" if tcp_stream >= 0 else ""
