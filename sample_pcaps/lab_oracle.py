"""tshark oracle for the lab captures: the facts that truth.json records and the tests re-check.

Everything here reads a capture file with tshark/capinfos and returns plain JSON-able data; nothing needs
root. lab.py uses it right after a scenario ran; tests/test_lab_facts.py uses it on the committed captures.

Conventions (so the analyzer's tables can be compared field by field):
- A TCP flow is one tshark `tcp.stream`. Its *client* sent the first SYN without ACK; with no SYN seen,
  the side with the higher port is the client.
- IP length is the IP total length (IPv4 `ip.len`, IPv6 `ipv6.plen` + 40) of the innermost IP header
  that carries the TCP segment: for VXLAN captures that is the encapsulated packet, not the UDP/4789 one.
- ICMP errors quote an IP+TCP header; those quoted headers are never counted as TCP packets.
- Retransmissions are frames tshark flags `tcp.analysis.retransmission` (fast and plain alike).
- With `tcpdump -i any` every forwarded packet is captured once per interface it crosses, so packets and
  retransmissions are counted per copy, exactly as tshark sees them.
"""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
import subprocess
from collections import defaultdict
from pathlib import Path

from netns_kit import ALLOWED_RANGES

# Protocol facts used by the checks, named once.
ICMP_FRAG_NEEDED = "icmp.type==3 && icmp.code==4"  # RFC 792/1191: destination unreachable, DF set
ICMPV6_PACKET_TOO_BIG = "icmpv6.type==2"  # RFC 4443 section 3.2
IPV6_HEADER_LEN = 40
# The incident's narrow MTU. "Did any server packet larger than this reach the capture point?"
NARROW_MTU = 1450

TSHARK_PREFS = ["-o", "tcp.calculate_timestamps:TRUE", "-o", "tcp.analyze_sequence_numbers:TRUE"]
FIELDS = [
    "frame.number",
    "frame.protocols",
    "ip.len",
    "ip.src",
    "ip.dst",
    "ipv6.plen",
    "ipv6.src",
    "ipv6.dst",
    "tcp.stream",
    "tcp.srcport",
    "tcp.dstport",
    "tcp.flags",
    "tcp.len",
    "tcp.options.mss_val",
    "tcp.analysis.retransmission",
    "icmp.type",
    "icmp.code",
    "icmp.mtu",
    "icmpv6.type",
    "icmpv6.mtu",
    "dns.flags.response",
    "dns.qry.name",
    "dns.a",
    "dns.aaaa",
    "sll.ifindex",
    "arp.src.proto_ipv4",
    "arp.dst.proto_ipv4",
]
TCP_SYN, TCP_RST, TCP_ACK, TCP_FIN = 0x02, 0x04, 0x10, 0x01


class OracleError(RuntimeError):
    """tshark or capinfos failed on a capture."""


def tshark_available() -> bool:
    return shutil.which("tshark") is not None and shutil.which("capinfos") is not None


def _run(cmd: list[str]) -> str:
    env = dict(os.environ, LC_ALL="C")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        raise OracleError(f"{' '.join(cmd)} exited {proc.returncode}: {proc.stderr.strip()}")
    return proc.stdout


def capture_format(path: str | os.PathLike) -> dict:
    """File type, link-layer encapsulation and timestamp precision, as capinfos -M names them."""
    out = _run(["capinfos", "-M", "-t", "-E", "-c", "-I", str(path)])
    info: dict = {"file_type": None, "encapsulation": None, "time_precision": None, "interfaces": 0}
    for line in out.splitlines():
        sep = " = " if " = " in line else ":"
        key, _, value = (part.strip() for part in line.partition(sep))
        if key == "File type":
            info["file_type"] = value  # pcap, nsecpcap, pcapng
        elif key == "File encapsulation":
            info["encapsulation"] = value  # ether, linux-sll, linux-sll2
        elif key == "Number of interfaces in file":
            info["interfaces"] = int(value)
        elif key == "Time precision" and info["time_precision"] is None:
            info["time_precision"] = value.split(" ")[0]  # microseconds, nanoseconds
    return info


def _split(value: str) -> list[str]:
    return value.split(",") if value else []


def _ints(value: str) -> list[int]:
    return [int(v, 0) for v in _split(value)]


def _innermost_ip(row: dict[str, str]) -> tuple[str, str, int] | None:
    """(src, dst, total length) of the IP header carrying the transport segment, or None.

    frame.protocols names the layers in order ("eth:ethertype:ip:udp:vxlan:eth:ethertype:ip:tcp"); the
    ip.* fields list one value per IP header in the same order. The carrying header is the first IP header
    after a VXLAN header if there is one, else the first.
    """
    layers = row["frame.protocols"].split(":")
    start = layers.index("vxlan") if "vxlan" in layers else 0
    family = next((p for p in layers[start:] if p in ("ip", "ipv6")), None)
    if family is None:
        return None
    index = layers[:start].count(family)  # headers of that family outside the tunnel come first
    if family == "ip":
        return _split(row["ip.src"])[index], _split(row["ip.dst"])[index], _ints(row["ip.len"])[index]
    plen = _ints(row["ipv6.plen"])[index]
    return _split(row["ipv6.src"])[index], _split(row["ipv6.dst"])[index], plen + IPV6_HEADER_LEN


def _rows(path: str | os.PathLike) -> list[dict[str, str]]:
    cmd = ["tshark", "-n", "-r", str(path), *TSHARK_PREFS, "-T", "fields", "-E", "separator=/t"]
    cmd += ["-E", "occurrence=a", "-E", "aggregator=,"]
    for field in FIELDS:
        cmd += ["-e", field]
    out = _run(cmd)
    return [dict(zip(FIELDS, line.split("\t"), strict=True)) for line in out.splitlines() if line]


def _new_flow() -> dict:
    return {
        "client_ip": None,
        "client_port": None,
        "server_ip": None,
        "server_port": None,
        "mss_client": None,
        "mss_server": None,
        "max_ip_len_c2s": 0,
        "max_ip_len_s2c": 0,
        "packets_c2s": 0,
        "packets_s2c": 0,
        "payload_bytes_c2s": 0,
        "payload_bytes_s2c": 0,
        "retransmissions": 0,
        "retransmissions_s2c": 0,
        "syn": 0,
        "syn_ack": 0,
        "rst_from_server": 0,
        "rst_from_client": 0,
        "fin_from_server": 0,
        "server_packets_gt_1450": 0,
    }


def measure(path: str | os.PathLike) -> dict:
    """All facts of one capture (see the module docstring for the conventions)."""
    rows = _rows(path)
    fmt = capture_format(path)
    streams: dict[int, list[tuple[dict[str, str], tuple[str, str, int]]]] = defaultdict(list)
    icmp_mtus: list[int] = []
    ptb_mtus: list[int] = []
    dns_answers: dict[str, set[str]] = defaultdict(set)
    dns_queries = 0
    ifindexes: set[int] = set()
    addresses: set[str] = set()
    for row in rows:
        ifindexes.update(_ints(row["sll.ifindex"]))
        for field in ("ip.src", "ip.dst", "ipv6.src", "ipv6.dst", "arp.src.proto_ipv4", "arp.dst.proto_ipv4"):
            addresses.update(_split(row[field]))
        icmp_types, icmp_codes = _ints(row["icmp.type"]), _ints(row["icmp.code"])
        icmp6_types = _ints(row["icmpv6.type"])
        if icmp_types or icmp6_types:
            # Only the first (outer) ICMP header counts; a quoted packet is not a TCP packet.
            if icmp_types[:1] == [3] and icmp_codes[:1] == [4]:
                icmp_mtus.extend(_ints(row["icmp.mtu"])[:1])
            if icmp6_types[:1] == [2]:
                ptb_mtus.extend(_ints(row["icmpv6.mtu"])[:1])
            continue
        if row["dns.qry.name"]:
            if row["dns.flags.response"] in ("1", "True"):
                name = _split(row["dns.qry.name"])[0]
                dns_answers[name].update(_split(row["dns.a"]) + _split(row["dns.aaaa"]))
            else:
                dns_queries += 1
        if row["tcp.stream"]:
            ip = _innermost_ip(row)
            if ip is not None:
                streams[int(row["tcp.stream"])].append((row, ip))

    flows = [_flow_facts(packets) for _, packets in sorted(streams.items())]
    by_port: dict[str, dict] = {}
    for flow in flows:
        port = by_port.setdefault(
            str(flow["server_port"]),
            {
                "streams": 0,
                "syn_mss_client": [],
                "syn_mss_server": [],
                "max_ip_len_s2c": 0,
                "max_ip_len_c2s": 0,
                "server_packets_gt_1450": 0,
                "retransmissions": 0,
            },
        )
        port["streams"] += 1
        for key, source in (("syn_mss_client", "mss_client"), ("syn_mss_server", "mss_server")):
            if flow[source] is not None and flow[source] not in port[key]:
                port[key] = sorted([*port[key], flow[source]])
        for key in ("max_ip_len_s2c", "max_ip_len_c2s"):
            port[key] = max(port[key], flow[key])
        port["server_packets_gt_1450"] += flow["server_packets_gt_1450"]
        port["retransmissions"] += flow["retransmissions"]

    return {
        "format": fmt,
        "packets": len(rows),
        "tcp_streams": len(flows),
        "retransmissions": sum(f["retransmissions"] for f in flows),
        "flows": flows,
        "by_server_port": dict(sorted(by_port.items())),
        "icmp_frag_needed": {"count": len(icmp_mtus), "mtus": sorted(set(icmp_mtus))},
        "icmpv6_packet_too_big": {"count": len(ptb_mtus), "mtus": sorted(set(ptb_mtus))},
        "dns": {
            "queries": dns_queries,
            "answers": {name: sorted(addrs) for name, addrs in sorted(dns_answers.items())},
        },
        "sll_interfaces": sorted(ifindexes),
        # every IPv4/IPv6 address in any header (outer, inner, quoted in ICMP, ARP)
        "addresses": sorted(addresses, key=lambda a: (":" in a, ipaddress.ip_address(a))),
    }


def _flow_facts(packets: list[tuple[dict[str, str], tuple[str, str, int]]]) -> dict:
    flow = _new_flow()
    client: tuple[str, int] | None = None
    for row, (src, _dst, _len) in packets:
        flags = int(row["tcp.flags"], 16)
        if flags & TCP_SYN and not flags & TCP_ACK:
            client = (src, int(row["tcp.srcport"]))
            break
    if client is None:
        first, (src, dst, _len) = packets[0]
        sport, dport = int(first["tcp.srcport"]), int(first["tcp.dstport"])
        client = (src, sport) if sport > dport else (dst, dport)
    for row, (src, dst, ip_len) in packets:
        sport, dport = int(row["tcp.srcport"]), int(row["tcp.dstport"])
        flags = int(row["tcp.flags"], 16)
        mss = _ints(row["tcp.options.mss_val"])
        retrans = bool(row["tcp.analysis.retransmission"])
        c2s = (src, sport) == client
        side = "c2s" if c2s else "s2c"
        if flow["client_ip"] is None:
            flow["client_ip"], flow["client_port"] = client
            flow["server_ip"], flow["server_port"] = (dst, dport) if c2s else (src, sport)
        flow[f"packets_{side}"] += 1
        flow[f"payload_bytes_{side}"] += int(row["tcp.len"] or 0)
        flow[f"max_ip_len_{side}"] = max(flow[f"max_ip_len_{side}"], ip_len)
        flow["retransmissions"] += retrans
        if flags & TCP_SYN:
            flow["syn" if c2s else "syn_ack"] += 1
            if mss:
                flow["mss_client" if c2s else "mss_server"] = mss[0]
        if flags & TCP_RST:
            flow["rst_from_client" if c2s else "rst_from_server"] += 1
        if not c2s:
            flow["retransmissions_s2c"] += retrans
            flow["fin_from_server"] += bool(flags & TCP_FIN)
            flow["server_packets_gt_1450"] += ip_len > NARROW_MTU
    return flow


_IO_ROW = re.compile(r"^\|\s*[\d.]+\s*<>\s*[\d.]+\s*\|")


def count_matches(path: str | os.PathLike, filters: list[str]) -> list[int]:
    """Number of frames matching each display filter, in one tshark pass (io,stat)."""
    if not filters:
        return []
    for display_filter in filters:
        if "," in display_filter:
            raise ValueError(f"io,stat cannot take a filter with a comma: {display_filter!r}")
    stat = "io,stat,0," + ",".join(f"frame && ({f})" for f in filters)
    out = _run(["tshark", "-n", "-q", "-r", str(path), *TSHARK_PREFS, "-z", stat])
    rows = [line for line in out.splitlines() if _IO_ROW.match(line)]
    if not rows:
        return [0] * len(filters)
    cells = [c.strip() for c in rows[-1].strip().strip("|").split("|")]
    # cells: interval, then "frames", "bytes" per filter
    counts = [int(cells[1 + 2 * i]) for i in range(len(filters))]
    return counts


def evaluate_checks(captures: dict[str, Path], checks: list[dict], facts: dict) -> list[dict]:
    """Run every check (see lab_scenarios.Check) and return them with `observed` and `ok` filled in."""
    results = [dict(check) for check in checks]
    for name, path in captures.items():
        mine = [r for r in results if r["capture"] == name and r.get("filter")]
        for result, count in zip(mine, count_matches(path, [r["filter"] for r in mine]), strict=True):
            result["observed"] = count
    for result in results:
        if result.get("filter"):
            observed = result["observed"]
            result["ok"] = (result.get("min") is None or observed >= result["min"]) and (
                result.get("max") is None or observed <= result["max"]
            )
        else:
            value = _lookup(facts[result["capture"]], result["fact"])
            result["observed"] = value
            result["ok"] = value == result["equals"]
    return results


def _lookup(tree: dict, dotted: str):
    node = tree
    for key in dotted.split("."):
        node = node[key] if isinstance(node, dict) else None
        if node is None:
            return None
    return node


# --- verdicts on a whole truth.json ----------------------------------------------------------------------

SLOW_FLOW_MIN_S = 2.0


def flow_ok(flow: dict) -> bool:
    """Did a curl run end as expected? failed = nonzero exit; succeeded = 2xx; slow = 2xx after >= 2 s."""
    code = flow["http_code"]
    succeeded = flow["curl_exit_code"] == 0 and code is not None and 200 <= code < 300
    if flow["expected"] == "failed":
        return flow["curl_exit_code"] != 0
    if flow["expected"] == "slow":
        return succeeded and flow["curl_time_s"] >= SLOW_FLOW_MIN_S
    return succeeded


def truth_problems(truth: dict) -> list[str]:
    """Why a truth.json does not show what its scenario claims (empty list: it does)."""
    problems = []
    for flow in truth["flows"]:
        if not flow_ok(flow):
            problems.append(
                f"flow {flow['name']}: expected {flow['expected']}, got curl exit {flow['curl_exit_code']}, "
                f"HTTP {flow['http_code']} after {flow['curl_time_s']} s ({flow['curl_error']})"
            )
    for check in truth["checks"]:
        if not check["ok"]:
            what = check.get("filter") or f"{check.get('fact')} == {check.get('equals')!r}"
            bounds = f"min {check.get('min')}, max {check.get('max')}" if check.get("filter") else ""
            problems.append(
                f"{check['capture']}.pcap: {check['why']} [{what}] observed {check['observed']!r} {bounds}".rstrip()
            )
    for role, facts in truth["facts"].items():
        if facts["packets"] == 0:
            problems.append(f"{role}.pcap is empty")
        foreign = [a for a in facts["addresses"] if not lab_address(a)]
        if foreign:
            problems.append(f"{role}.pcap contains addresses outside the lab ranges: {', '.join(foreign)}")
    return problems


# The lab's own ranges plus what hosts send on their own: link-local multicast, IPv6 link-local, unspecified.
# (IGMP reports go to 224.0.0.22, a link-local multicast group; MLD to ff02::16.)
LAB_RANGES = ALLOWED_RANGES + [
    ipaddress.ip_network(n) for n in ("224.0.0.0/24", "fe80::/10", "ff00::/8", "::/128")
]


def lab_address(text: str) -> bool:
    addr = ipaddress.ip_address(text)
    return any(addr in net for net in LAB_RANGES if net.version == addr.version)
