#!/usr/bin/env python3
"""Build a realistic benchmark capture from real traffic between private network namespaces.

Run as root:

    python3 benchmarks/make_capture.py                      # ~1,000,000 packets -> benchmarks/work/real-1m.pcap
    python3 benchmarks/make_capture.py --packets 100000 --out /tmp/small.pcap --stats

Topology (R is a short random run id; every namespace and link name starts with ``pmb-R-``)::

    pmb-R-cli ==c0/r0== pmb-R-rtr ==r1/s1== pmb-R-srv   web (HTTP/1.0 :80, HTTP/1.1 :8080) + dnsmasq
      (capture on c0)              \\=r2/f2== pmb-R-far   web, MTU 1450, 0.25 % random loss each way

The namespaces are connected only to each other: no link to the host's namespace, no NAT, so nothing can
leave the machine. Addresses are in 198.18.0.0/15 (RFC 2544 benchmarking) and fd00::/8 only; this is
checked before anything is created.

Traffic, all paced so that the packet mix does not depend much on the machine's speed:

* many short HTTP/1.0 connections (curl against a Python ``http.server`` based server, some in parallel
  like a browser, sizes log-normal around 4 KB, a few 404s), about a quarter over the lossy path and a few
  over IPv6; the client's ephemeral range is narrowed and ``tcp_tw_reuse`` is on, so source ports are
  reused during the capture, and one generator pins ``curl --local-port`` to 4 ports so the very same
  4-tuple comes back every few connections;
* HTTP/1.1 keep-alive connections with several requests each, and a few POST uploads;
* long bulk downloads (tens of MB, mostly rate-limited by the client like a video player, sometimes at
  full speed), mostly over the lossy path so there are retransmissions, dup-ACKs and window stalls;
* DNS: A+AAAA query pairs from a fresh source port (like glibc), CNAMEs and CNAME chains, PTR, MX, TXT,
  SRV, NXDOMAIN and NODATA answers, a little over IPv6 (dnsmasq with local records only);
* with ``--profile dns-heavy`` (default output work/real-dns-1m.pcap), also a Kubernetes node's resolver
  traffic: ndots:5 search-list expansion (NXDOMAIN under each search domain first), many distinct names,
  CNAME chains, NXDOMAIN, EDNS0 on some queries, and answers over 512 bytes that come back truncated (TC)
  and are asked again over TCP.

Offloads (TSO/GSO/GRO and TX checksum) are switched off on every link so the packets are wire-sized and
carry correct checksums. tcpdump (``-s 0 -w``, ``-c N``) captures on the client's interface and stops at
the packet target. Everything created is torn down in ``finally``: the processes this script started are
signalled by PID, anything still running inside its own namespaces (their children) is killed by PID, then
the namespaces are deleted. The namespace plumbing, the teardown, the allowed address ranges and the
dual-stack HTTP server base are sample_pcaps/netns_kit.py, shared with the lab.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import random
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "work" / "real-1m.pcap"

# The network-namespace kit (allowed ranges, namespaces/processes with teardown, plumbing, dual-stack HTTP
# server) is shared with the lab: sample_pcaps/netns_kit.py, a plain module found through sys.path.
sys.path.insert(0, str(HERE.parent / "sample_pcaps"))
import netns_kit  # noqa: E402

# Addressing. cli <-> rtr is link 1, rtr <-> srv link 2, rtr <-> far link 3.
CLI4, RTR1_4, SRV4, SRV4_API, RTR2_4, FAR4, RTR3_4 = (
    "198.18.1.10",
    "198.18.1.1",
    "198.18.2.2",
    "198.18.2.3",
    "198.18.2.1",
    "198.18.3.2",
    "198.18.3.1",
)
CLI6, RTR1_6, SRV6, RTR2_6, FAR6, RTR3_6 = (
    "fd00:66:1::10",
    "fd00:66:1::1",
    "fd00:66:2::2",
    "fd00:66:2::1",
    "fd00:66:3::2",
    "fd00:66:3::1",
)
ALL_ADDRS = [CLI4, RTR1_4, SRV4, SRV4_API, RTR2_4, FAR4, RTR3_4, CLI6, RTR1_6, SRV6, RTR2_6, FAR6, RTR3_6]
FAR_NET4 = "198.18.3.0/24"
FAR_MTU = 1450
CLIENT_PORT_RANGE = "40000 44999"
REUSE_PORTS = "47000-47003"

# Pacing (per second) of each generator at --rate 1.0. Roughly: short HTTP ~40 %, bulk ~45 %, keep-alive
# ~8 %, DNS ~5 % of the packets; about 12-15 k packets/s in total.
RATE_SHORT_CPS = 260.0  # short HTTP/1.0 connections per second
RATE_REUSE_CPS = 20.0  # connections per second from the 4 pinned local ports
RATE_KEEPALIVE_CPS = 12.0  # keep-alive connections per second (2-20 requests each)
RATE_DNS_QPS = 160.0  # DNS query pairs per second (A + AAAA, or one other type)
BULK_STREAMS = 2  # concurrent bulk download loops
BULK_RATE_MB = (2.0, 6.0)  # client-side --limit-rate range, MB/s; ~1 in 6 downloads is unlimited

DNS_HOSTS = 48

# --profile dns-heavy: a Kubernetes node's resolver traffic on top of the same web traffic. Pods resolve with
# ndots:5 and three search domains, so most lookups first try the name under each search domain (NXDOMAIN),
# A and AAAA in parallel, like glibc; many distinct names (services, per-pod and external names), CNAME chains,
# NXDOMAIN, big answers that come back truncated (TC) over UDP and are asked again over TCP, some EDNS0.
DNS_HEAVY_OUT = HERE / "work" / "real-dns-1m.pcap"
DNS_HEAVY_LPS = 500.0  # lookups per second at --rate 1.0 (each is 2-8 queries), over 3 generators
DNS_HEAVY_GENERATORS = 3
K8S_SEARCH = ("default.svc.cluster.local", "svc.cluster.local", "cluster.local")
K8S_SERVICES = 1500  # svc<i>.ns<i % 40>.svc.cluster.local, 1 in 3 also with an AAAA
K8S_CHAINS = 400  # app<i>.pmb.test -> lb<i>.pmb.test -> origin<i>.pmb.test
K8S_BIG = 20  # big<i>.pmb.test: 40 A records, over 512 bytes without EDNS0: truncated, then TCP


def log(msg: str) -> None:
    print(f"[make_capture {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# Every namespace this script creates is pmb-<run id>-*; everything it creates or starts is registered here.
RES = netns_kit.Resources("pmb-", warn=lambda msg: log(f"warning: {msg}"))


DNS_RECORD_NETS = ["198.19.0.0/16", "fd00:66:8::/48", "fd00:66:9::/48"]  # dns-heavy answers (no traffic)


def check_addresses() -> None:
    for a in ALL_ADDRS + [FAR_NET4] + DNS_RECORD_NETS:
        if not netns_kit.allowed(a):
            raise SystemExit(f"refusing to use address {a}: outside the allowed ranges")


# --------------------------------------------------------------------------------------------------
# In-namespace helpers (hidden subcommands: this file re-executes itself inside the namespaces)
# --------------------------------------------------------------------------------------------------

_BLOB = b""


class _DualStackServer(netns_kit.DualStackHTTPServer):
    request_queue_size = 1024


class _Handler(BaseHTTPRequestHandler):
    server_version = "pmb-httpd/1.0"
    sys_version = ""
    timeout = 20  # idle keep-alive connections are closed by the server after this

    def log_message(self, format, *args):  # noqa: A002 - silence the access log
        pass

    def _head(self, code: int, reason: str, length: int, ctype: str = "application/octet-stream") -> bytes:
        lines = [
            f"{self.protocol_version} {code} {reason}",
            f"Server: {self.server_version}",
            f"Date: {self.date_time_string()}",
            f"Content-Type: {ctype}",
            f"Content-Length: {length}",
        ]
        if self.protocol_version == "HTTP/1.1":
            lines.append("Connection: close" if self.close_connection else "Connection: keep-alive")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def do_GET(self):
        parts = self.path.split("/")
        try:
            kind, n = parts[1], int(parts[2])
        except (IndexError, ValueError):
            kind, n = "", 0
        if kind == "s":  # small object: headers and body in one write, like a real server
            body = memoryview(_BLOB)[: min(n, len(_BLOB))]
            self.wfile.write(self._head(200, "OK", len(body), "text/html") + bytes(body))
        elif kind == "bulk":
            self.wfile.write(self._head(200, "OK", n))
            view, left = memoryview(_BLOB), n
            while left > 0:
                k = min(left, 256 * 1024)
                self.wfile.write(view[:k])
                left -= k
        else:
            body = b"<html><body>not found</body></html>\n"
            self.wfile.write(self._head(404, "Not Found", len(body), "text/html") + body)

    def do_POST(self):
        left = int(self.headers.get("Content-Length") or 0)
        while left > 0:
            chunk = self.rfile.read(min(left, 256 * 1024))
            if not chunk:
                break
            left -= len(chunk)
        body = b'{"stored": true}\n'
        self.wfile.write(self._head(201, "Created", len(body), "application/json") + body)


def cmd_serve(argv: list[str]) -> None:
    p = argparse.ArgumentParser(prog="make_capture.py _serve")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--http11", action="store_true")
    a = p.parse_args(argv)
    global _BLOB
    _BLOB = random.Random(a.port).randbytes(1 << 20)
    handler = type("H", (_Handler,), {"protocol_version": "HTTP/1.1" if a.http11 else "HTTP/1.0"})
    srv = _DualStackServer(("::", a.port), handler)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    srv.serve_forever(poll_interval=0.5)


def _pace(t0: float, done: float, rate: float) -> None:
    """Sleep so that `done` units since `t0` took at least done/rate seconds."""
    ahead = t0 + done / rate - time.monotonic()
    if ahead > 0:
        time.sleep(ahead)


def _small_size(rng: random.Random) -> int:
    return int(min(max(rng.lognormvariate(math.log(4000), 1.3), 40), 900_000))


def _pick(rng: random.Random, weighted: list[tuple[str, float]]) -> str:
    return rng.choices([w[0] for w in weighted], weights=[w[1] for w in weighted])[0]


def _curl(config: str, extra: list[str] | None = None, timeout: float = 600) -> None:
    base = ["curl", "-q", "--config", "-"]
    common = 'silent\ngloboff\nnoproxy = "*"\nconnect-timeout = 5\nmax-time = 300\n'
    with contextlib.suppress(subprocess.TimeoutExpired):
        subprocess.run(
            base + (extra or []),
            input=(common + config).encode(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=timeout,
            check=False,
        )


def cmd_http(argv: list[str]) -> None:
    p = argparse.ArgumentParser(prog="make_capture.py _http")
    p.add_argument("--mode", choices=["short", "reuse", "keepalive", "bulk"], required=True)
    p.add_argument("--rate", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    rng = random.Random(a.seed)
    if a.mode == "bulk":
        time.sleep(rng.uniform(1.0, 6.0))  # do not let every download start in the capture's first second
    t0, done = time.monotonic(), 0.0
    v4, far, v6 = f"http://{SRV4}", f"http://{FAR4}", f"http://[{SRV6}]"
    api = f"http://{SRV4_API}"
    while True:
        if a.mode == "short":
            # A "page": 1 to 40 objects from one origin, fetched over 1-6 parallel connections.
            origin = _pick(rng, [(v4, 55), (api, 15), (far, 25), (v6, 5)])
            n = rng.choice([1, 1, 2, 3, 5, 8, 12, 20, 40])
            lines = []
            for _ in range(n):
                path = f"/s/{_small_size(rng)}" if rng.random() > 0.03 else f"/missing/{rng.randrange(1000)}"
                lines.append(f'url = "{origin}{path}"\noutput = "/dev/null"\n')
            par = rng.choice([1, 1, 2, 4, 6])
            cfg = "".join(lines) + (f"parallel\nparallel-max = {par}\n" if par > 1 and n > 1 else "")
            _curl(cfg)
            done += n
            _pace(t0, done, RATE_SHORT_CPS * a.rate)
        elif a.mode == "reuse":
            n = 20
            cfg = "".join(f'url = "{v4}/s/{_small_size(rng)}"\noutput = "/dev/null"\n' for _ in range(n))
            _curl(cfg, ["--local-port", REUSE_PORTS])
            done += n
            _pace(t0, done, RATE_REUSE_CPS * a.rate)
        elif a.mode == "keepalive":
            origin = _pick(rng, [(f"{v4}:8080", 60), (f"{far}:8080", 30), (f"{v6}:8080", 10)])
            if rng.random() < 0.04:  # an upload
                _upload(origin, rng.randrange(50_000, 2_000_000), rng)
            else:
                n = rng.randrange(2, 21)
                cfg = "".join(
                    f'url = "{origin}/s/{_small_size(rng)}"\noutput = "/dev/null"\n' for _ in range(n)
                )
                _curl(cfg)
            done += 1
            _pace(t0, done, RATE_KEEPALIVE_CPS * a.rate)
        else:  # bulk
            origin = _pick(rng, [(far, 70), (v4, 25), (v6, 5)])
            if rng.random() < 1 / 6:
                size, limit = rng.randrange(10, 40) * 1_000_000, None
            else:
                size = rng.randrange(15, 90) * 1_000_000
                limit = f"{int(rng.uniform(*BULK_RATE_MB) * 1_000_000 * a.rate)}"
            cfg = f'url = "{origin}/bulk/{size}"\noutput = "/dev/null"\n'
            if limit:
                cfg += f"limit-rate = {limit}\n"
            _curl(cfg)
            time.sleep(rng.uniform(0.2, 2.0))


def _upload(origin: str, size: int, rng: random.Random) -> None:
    data = rng.randbytes(size)
    with contextlib.suppress(subprocess.TimeoutExpired):
        subprocess.run(
            ["curl", "-q", "-s", "-g", "--noproxy", "*", "--max-time", "120", "-o", "/dev/null"]
            + ["--data-binary", "@-", "-H", "Content-Type: application/octet-stream", f"{origin}/upload"],
            input=data,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=150,
            check=False,
        )


QTYPES = {"A": 1, "AAAA": 28, "PTR": 12, "MX": 15, "TXT": 16, "SRV": 33}


def _dns_query(qid: int, name: str, qtype: int) -> bytes:
    q = b"".join(bytes([len(lab)]) + lab.encode() for lab in name.rstrip(".").split("."))
    return struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + q + b"\0" + struct.pack("!HH", qtype, 1)


def _dns_exchange(server: str, queries: list[bytes], timeout: float = 0.5) -> int:
    fam = socket.AF_INET6 if ":" in server else socket.AF_INET
    got = 0
    with socket.socket(fam, socket.SOCK_DGRAM) as s:  # fresh socket = fresh source port
        s.settimeout(timeout)
        for q in queries:
            s.sendto(q, (server, 53))
        try:
            for _ in queries:
                s.recvfrom(4096)
                got += 1
        except TimeoutError:
            pass
    return got


def _dns_name(rng: random.Random) -> tuple[str, list[str]]:
    i = rng.randrange(DNS_HOSTS)
    r = rng.random()
    if r < 0.30:
        return f"www{i}.pmb.test", ["A", "AAAA"]  # CNAME -> host
    if r < 0.45:
        return f"cdn{i}.pmb.test", ["A", "AAAA"]  # CNAME -> CNAME -> host
    if r < 0.75:
        return f"host{i}.pmb.test", ["A", "AAAA"]
    if r < 0.82:
        return f"nx{rng.randrange(10**6)}.pmb.test", ["A", "AAAA"]  # NXDOMAIN
    if r < 0.88:
        return "2.2.18.198.in-addr.arpa", ["PTR"]
    if r < 0.92:
        return "pmb.test", ["MX"]
    if r < 0.96:
        return "pmb.test", ["TXT"]
    return "_http._tcp.pmb.test", ["SRV"]


def cmd_dns(argv: list[str]) -> None:
    p = argparse.ArgumentParser(prog="make_capture.py _dns")
    p.add_argument("--rate", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--probe", action="store_true", help="one query; exit 0 if answered")
    a = p.parse_args(argv)
    rng = random.Random(a.seed)
    if a.probe:
        sys.exit(0 if _dns_exchange(SRV4, [_dns_query(1, "www1.pmb.test", 1)], 1.0) else 1)
    t0, done = time.monotonic(), 0
    while True:
        name, types = _dns_name(rng)
        server = SRV6 if rng.random() < 0.08 else SRV4
        _dns_exchange(server, [_dns_query(rng.randrange(65536), name, QTYPES[t]) for t in types])
        done += 1
        _pace(t0, done, RATE_DNS_QPS * a.rate)


def _dns_reply(s: socket.socket, want: int) -> tuple[int, int] | None:
    """(flags, answer count) of the reply with transaction id `want`, or None after the socket's timeout."""
    while True:
        try:
            data = s.recv(4096)
        except TimeoutError:
            return None
        if len(data) >= 12 and struct.unpack_from("!H", data)[0] == want:
            flags, _qd, an = struct.unpack_from("!HHH", data, 2)
            return flags, an


def _dns_tcp(server: str, query: bytes, timeout: float = 1.0) -> None:
    """Ask again over TCP (RFC 7766 length-prefixed), as a stub resolver does after a truncated answer."""
    fam = socket.AF_INET6 if ":" in server else socket.AF_INET
    with contextlib.suppress(OSError), socket.socket(fam, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect((server, 53))
        s.sendall(struct.pack("!H", len(query)) + query)
        want = 2
        got = b""
        while len(got) < want:
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
            if len(got) >= 2:
                want = 2 + struct.unpack_from("!H", got)[0]


def _edns(query: bytes) -> bytes:
    """The query with an EDNS0 OPT record (UDP size 1232) in its additional section."""
    return query[:10] + b"\x00\x01" + query[12:] + b"\x00" + struct.pack("!HHIH", 41, 1232, 0, 0)


def _k8s_lookup(rng: random.Random, server: str, name: str, edns: bool) -> None:
    """One getaddrinfo() of a pod: ndots:5 search-list expansion, A and AAAA in parallel from one socket,
    stop at the first candidate that is not NXDOMAIN; a truncated answer is asked again over TCP."""
    fqdn = name.endswith(".")
    name = name.rstrip(".")
    search = [] if fqdn or name.count(".") >= 5 else [f"{name}.{d}" for d in K8S_SEARCH]
    fam = socket.AF_INET6 if ":" in server else socket.AF_INET
    with socket.socket(fam, socket.SOCK_DGRAM) as s:
        s.settimeout(0.5)
        for candidate in [*search, name]:
            qs = [_dns_query(rng.randrange(65536), candidate, t) for t in (1, 28)]
            if edns:
                qs = [_edns(q) for q in qs]
            rcodes = []
            for q in qs:
                s.sendto(q, (server, 53))
            for q in qs:
                reply = _dns_reply(s, struct.unpack_from("!H", q)[0])
                if reply is None:
                    continue
                flags, _an = reply
                rcodes.append(flags & 0xF)
                if flags & 0x0200:  # TC
                    _dns_tcp(server, q)
            if rcodes and 3 not in rcodes:
                return


def _k8s_name(rng: random.Random) -> str:
    """What a pod asks for: its own namespace's services, other namespaces', external names, mistakes."""
    i = rng.randrange(K8S_SERVICES)
    r = rng.random()
    if r < 0.25:
        return f"svc{i}.ns{i % 40}"  # found under svc.cluster.local after one NXDOMAIN
    if r < 0.35:
        return f"svc{i}.ns{i % 40}.svc.cluster.local"  # 4 dots: the search list is tried first
    if r < 0.45:
        return f"svc{i}"  # found under default.svc.cluster.local at once (i < K8S_SERVICES / 40)
    if r < 0.70:
        return f"api{rng.randrange(20000)}.ext{rng.randrange(50)}.pmb.test"  # wildcard external names
    if r < 0.82:
        return f"app{rng.randrange(K8S_CHAINS)}.pmb.test"  # CNAME -> CNAME -> host
    if r < 0.92:
        return f"nx{rng.randrange(10**6)}.pmb.test"  # NXDOMAIN after the search list
    if r < 0.95:
        return f"big{rng.randrange(K8S_BIG)}.pmb.test."  # truncated over UDP, then TCP
    return f"pod-{rng.randrange(10**5)}.headless.ns{rng.randrange(40)}.svc.cluster.local."  # NXDOMAIN


def cmd_dns_heavy(argv: list[str]) -> None:
    p = argparse.ArgumentParser(prog="make_capture.py _dns_heavy")
    p.add_argument("--rate", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    rng = random.Random(a.seed)
    t0, done = time.monotonic(), 0
    while True:
        server = SRV6 if rng.random() < 0.08 else SRV4
        _k8s_lookup(rng, server, _k8s_name(rng), edns=rng.random() < 0.3)
        done += 1
        _pace(t0, done, DNS_HEAVY_LPS / DNS_HEAVY_GENERATORS * a.rate)


def dnsmasq_heavy_conf() -> list[str]:
    """The dns-heavy profile's extra records: cluster services, CNAME chains, a wildcard, big answers."""
    lines = ["local=/cluster.local/"]
    lines += [f"address=/ext{k}.pmb.test/{SRV4_API if k % 2 else FAR4}" for k in range(50)]
    lines += [f"address=/ext{k}.pmb.test/{SRV6}" for k in range(0, 50, 3)]
    for i in range(K8S_SERVICES):
        v4 = f"198.19.{i // 250}.{i % 250 + 1}"
        rec = f"host-record=svc{i}.ns{i % 40}.svc.cluster.local,{v4}"
        lines.append(rec + (f",fd00:66:9::{i:x}" if i % 3 == 0 else ""))
        if i % 40 == 0:
            lines.append(f"host-record=svc{i}.default.svc.cluster.local,{v4}")
    for i in range(K8S_CHAINS):
        lines.append(f"host-record=origin{i}.pmb.test,198.19.100.{i % 250 + 1},fd00:66:8::{i:x}")
        lines.append(f"cname=lb{i}.pmb.test,origin{i}.pmb.test")
        lines.append(f"cname=app{i}.pmb.test,lb{i}.pmb.test")
    for i in range(K8S_BIG):
        lines += [f"host-record=big{i}.pmb.test,198.19.200.{k + 1}" for k in range(40)]
    return lines


def dnsmasq_conf(profile: str = "mixed") -> str:
    lines = [
        "no-resolv",
        "no-hosts",
        "no-poll",
        "bind-interfaces",
        f"listen-address={SRV4}",
        f"listen-address={SRV6}",
        "local=/pmb.test/",
        "local=/18.198.in-addr.arpa/",
        "domain-needed",
        "local-ttl=30",
        "mx-host=pmb.test,mail.pmb.test,10",
        f"host-record=mail.pmb.test,{SRV4}",
        'txt-record=pmb.test,"v=spf1 -all","pmb benchmark zone"',
        "srv-host=_http._tcp.pmb.test,host1.pmb.test,80,0,10",
    ]
    v4s = [SRV4, SRV4_API, FAR4]
    for i in range(DNS_HOSTS):
        v4 = v4s[i % 3]
        rec = f"host-record=host{i}.pmb.test,{v4}"
        if i % 4 == 0:
            rec += f",{SRV6}"
        lines.append(rec)
        lines.append(f"cname=www{i}.pmb.test,host{i}.pmb.test")
        lines.append(f"cname=edge{i}.pmb.test,host{i}.pmb.test")
        lines.append(f"cname=cdn{i}.pmb.test,edge{i}.pmb.test")
    lines.append("ptr-record=2.2.18.198.in-addr.arpa,host0.pmb.test")
    if profile == "dns-heavy":
        lines += dnsmasq_heavy_conf()
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------------
# The lab: namespaces, links, processes
# --------------------------------------------------------------------------------------------------


class Lab:
    def __init__(
        self, run_id: str, tmpdir: Path, loss: float, rate: float, seed: int, profile: str = "mixed"
    ):
        self.rid = run_id
        self.profile = profile
        self.tmp = tmpdir
        self.loss = loss
        self.rate = rate
        self.seed = seed
        self.ns = {role: f"pmb-{run_id}-{role}" for role in ("cli", "rtr", "srv", "far")}
        self.ifname = {k: f"pmb-{run_id}-{k}" for k in ("c0", "r0", "r1", "s1", "r2", "f2")}
        self.procs: list[tuple[str, subprocess.Popen]] = []

    # -- plumbing (netns_kit: every namespace and process is registered in RES) --
    def run(self, args: list[str], ns: str, check: bool = True) -> subprocess.CompletedProcess:
        return RES.execute(args, ns=self.ns[ns], check=check)

    def spawn(self, name: str, ns: str, args: list[str], **kw) -> subprocess.Popen:
        kw.setdefault("stdout", subprocess.DEVNULL)
        kw.setdefault("stderr", subprocess.DEVNULL)
        # Own session: a Ctrl-C in the terminal reaches only this script, which then tears everything down.
        p = RES.spawn(self.ns[ns], args, start_new_session=True, **kw)
        self.procs.append((name, p))
        return p

    def self_cmd(self, *args: str) -> list[str]:
        return [sys.executable, str(Path(__file__).resolve()), *args]

    # -- setup --
    def setup(self) -> None:
        for name in self.ns.values():
            RES.add_netns(name)
        links = [
            ("cli", "c0", CLI4, CLI6, "rtr", "r0", RTR1_4, RTR1_6, 1500),
            ("rtr", "r1", RTR2_4, RTR2_6, "srv", "s1", SRV4, SRV6, 1500),
            ("rtr", "r2", RTR3_4, RTR3_6, "far", "f2", FAR4, FAR6, FAR_MTU),
        ]
        for ns_a, if_a, v4_a, v6_a, ns_b, if_b, v4_b, v6_b, mtu in links:
            a, b = self.ifname[if_a], self.ifname[if_b]
            RES.veth(self.ns[ns_a], a, self.ns[ns_b], b)
            for ns, dev, v4, v6 in ((ns_a, a, v4_a, v6_a), (ns_b, b, v4_b, v6_b)):
                RES.addr(self.ns[ns], dev, f"{v4}/24")
                RES.addr(self.ns[ns], dev, f"{v6}/64")
                for feature in RES.offloads(self.ns[ns], dev, lenient=True):
                    log(f"warning: could not turn {feature} off on {dev}")
                RES.link_up(self.ns[ns], dev, mtu)
        RES.addr(self.ns["srv"], self.ifname["s1"], f"{SRV4_API}/24")
        for ns, gw4, gw6 in (("cli", RTR1_4, RTR1_6), ("srv", RTR2_4, RTR2_6), ("far", RTR3_4, RTR3_6)):
            RES.default_route(self.ns[ns], gw4)
            RES.default_route(self.ns[ns], gw6)
        RES.sysctl(self.ns["rtr"], "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1")
        RES.sysctl(
            self.ns["cli"], f"net.ipv4.ip_local_port_range={CLIENT_PORT_RANGE}", "net.ipv4.tcp_tw_reuse=1"
        )
        if self.loss > 0:
            p = f"{self.loss:.6f}"
            for direction in ("-d", "-s"):
                self.run(
                    ["iptables", "-A", "FORWARD", direction, FAR_NET4, "-m", "statistic"]
                    + ["--mode", "random", "--probability", p, "-j", "DROP"],
                    ns="rtr",
                )

    def start_services(self) -> None:
        for ns in ("srv", "far"):
            self.spawn(f"httpd-{ns}-80", ns, self.self_cmd("_serve", "--port", "80"))
            self.spawn(f"httpd-{ns}-8080", ns, self.self_cmd("_serve", "--port", "8080", "--http11"))
        conf = self.tmp / "dnsmasq.conf"
        conf.write_text(dnsmasq_conf(self.profile))
        self.spawn(
            "dnsmasq",
            "srv",
            [
                "dnsmasq",
                "--keep-in-foreground",
                f"--conf-file={conf}",
                f"--pid-file={self.tmp / 'dnsmasq.pid'}",
            ]
            + ["--user=root", "--group=root"],
            stderr=open(self.tmp / "dnsmasq.log", "w"),  # noqa: SIM115 - closed with the process
        )
        deadline = time.monotonic() + 15
        pending = [f"http://{SRV4}/s/10", f"http://{FAR4}:8080/s/10", f"http://[{SRV6}]/s/10"]
        pending += [f"http://{FAR4}/s/10", f"http://{SRV4}:8080/s/10"]
        dns_ok = False
        while time.monotonic() < deadline and (pending or not dns_ok):
            for url in list(pending):
                r = self.run(
                    [
                        "curl",
                        "-q",
                        "-sg",
                        "--noproxy",
                        "*",
                        "-m",
                        "2",
                        "-o",
                        "/dev/null",
                        "-w",
                        "%{http_code}",
                    ]
                    + [url],
                    ns="cli",
                    check=False,
                )
                if r.stdout.strip() == "200":
                    pending.remove(url)
            if not dns_ok:
                dns_ok = self.run(self.self_cmd("_dns", "--probe"), ns="cli", check=False).returncode == 0
            time.sleep(0.2)
        for name, p in self.procs:
            if p.poll() is not None:
                raise RuntimeError(f"{name} exited early with code {p.returncode}")
        if pending or not dns_ok:
            raise RuntimeError(f"services not reachable: {pending} dns_ok={dns_ok}")

    def start_traffic(self) -> None:
        r = f"{self.rate}"
        gens = [("short", 1), ("short", 2), ("reuse", 3), ("keepalive", 4)]
        gens += [("bulk", 10 + i) for i in range(BULK_STREAMS)]
        for mode, k in gens:
            seed = str(self.seed * 100 + k)
            rate = f"{self.rate / 2}" if mode == "short" else r  # two short generators share the rate
            self.spawn(
                f"gen-{mode}-{k}",
                "cli",
                self.self_cmd("_http", "--mode", mode, "--rate", rate, "--seed", seed),
            )
        self.spawn("gen-dns", "cli", self.self_cmd("_dns", "--rate", r, "--seed", str(self.seed * 100 + 9)))
        if self.profile == "dns-heavy":
            for k in range(DNS_HEAVY_GENERATORS):
                seed = str(self.seed * 100 + 20 + k)
                self.spawn(
                    f"gen-dns-heavy-{k}", "cli", self.self_cmd("_dns_heavy", "--rate", r, "--seed", seed)
                )

    # -- teardown --
    def stop(self, name_prefix: str = "") -> None:
        """End (by PID) the processes started under names beginning with `name_prefix`."""
        keep = []
        for name, p in self.procs:
            if name.startswith(name_prefix):
                RES.stop(p)
            else:
                keep.append((name, p))
        self.procs = keep

    def teardown(self) -> None:
        """Every process this script started, then anything left inside its namespaces, then the namespaces."""
        RES.cleanup()
        self.procs = []


STAT_FIELDS = [
    "frame.len",
    "ip.src",
    "ip.dst",
    "ipv6.src",
    "ipv6.dst",
    "tcp.stream",
    "tcp.srcport",
    "tcp.dstport",
    "tcp.flags",
    "tcp.analysis.retransmission",
    "tcp.analysis.fast_retransmission",
    "tcp.analysis.duplicate_ack",
    "tcp.analysis.zero_window",
    "tcp.options.mss_val",
    "udp.srcport",
    "dns.flags.response",
    "dns.flags.rcode",
    "dns.cname",
]


def capture_stats(path: Path) -> dict:
    """What is in a capture, from one tshark pass (slow: several minutes per million packets)."""
    proc = subprocess.Popen(
        ["tshark", "-n", "-r", str(path), "-T", "fields", "-E", "separator=|"]
        + [x for f in STAT_FIELDS for x in ("-e", f)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    c: Counter = Counter()
    streams: Counter = Counter()
    stream_kind: dict[str, str] = {}
    syns: Counter = Counter()
    mss: Counter = Counter()
    for line in proc.stdout:
        flen, s4, d4, s6, d6, st, sp, dp, flags, rt, frt, dup, zw, mssv, usp, resp, rcode, cname = (
            line.rstrip("\n").split("|")
        )
        c["packets"] += 1
        c["bytes"] += int(flen or 0)
        if s6:
            c["ipv6"] += 1
        if st:
            c["tcp"] += 1
            streams[st] += 1
            far = FAR4 in (s4, d4) or FAR6 in (s6, d6)
            stream_kind.setdefault(
                st, ("keepalive" if "8080" in (sp, dp) else "short") + ("-far" if far else "")
            )
            f = int(flags, 16) if flags else 0
            if f & 0x02 and not f & 0x10:
                syns[(s4 or s6, sp, d4 or d6, dp)] += 1
            c["retransmission"] += bool(rt)
            c["fast_retransmission"] += bool(frt)
            c["duplicate_ack"] += bool(dup)
            c["zero_window"] += bool(zw)
            if mssv:
                mss[mssv] += 1
        elif usp:
            c["dns"] += 1
            if resp in ("1", "True"):
                c["dns_responses"] += 1
                c["dns_with_cname"] += bool(cname)
                c["dns_nxdomain"] += rcode == "3"
            else:
                c["dns_queries"] += 1
    proc.wait()
    mix: Counter = Counter()
    for st, n in streams.items():
        kind = stream_kind[st]
        mix[("bulk-far" if kind.endswith("-far") else "bulk") if n > 3000 else kind] += n
    out = dict(c)
    out["tcp_connections"] = len(streams)  # tshark's tcp.stream: the same count as -z conv,tcp
    out["bulk_connections"] = sum(1 for n in streams.values() if n > 3000)
    out["syns"] = sum(syns.values())
    out["syn_4tuples"] = len(syns)
    out["syn_4tuples_reused"] = sum(1 for n in syns.values() if n > 1)
    out["syn_4tuple_max_reuse"] = max(syns.values(), default=0)
    out["client_ports"] = len({k[1] for k in syns})
    out["mss"] = dict(mss)
    out["tcp_mix_packets"] = dict(mix)
    if shutil.which("tcptrace"):
        r = subprocess.run(["tcptrace", "-n", "-l", str(path)], capture_output=True, text=True)
        m = re.search(r"(\d+) TCP connections traced", r.stdout)
        out["tcptrace_connections"] = int(m.group(1)) if m else None
        rex = [int(x) for x in re.findall(r"rexmt data pkts:\s+(\d+)", r.stdout)]
        out["tcptrace_rexmt_data_pkts"] = sum(rex)
    return out


def print_stats(st: dict) -> None:
    n = st.get("packets", 0) or 1
    pct = lambda k: f"{st.get(k, 0):,} ({100 * st.get(k, 0) / n:.2f} %)"  # noqa: E731
    print(
        f"packets: {st.get('packets', 0):,}; frame bytes: {st.get('bytes', 0):,}; IPv6 packets: {pct('ipv6')}"
    )
    print(
        f"TCP: {pct('tcp')} in {st['tcp_connections']:,} connections (tshark tcp.stream = -z conv,tcp); "
        f"tcptrace: {st.get('tcptrace_connections')} connections"
    )
    print(
        f"  {st['syns']:,} SYNs on {st['syn_4tuples']:,} 4-tuples, {st['syn_4tuples_reused']:,} 4-tuples opened more "
        f"than once (up to {st['syn_4tuple_max_reuse']}x), {st['client_ports']:,} client ports"
    )
    print(
        f"  tshark: retransmissions {pct('retransmission')}, of which fast {st.get('fast_retransmission', 0):,}; "
        f"dup ACKs {st.get('duplicate_ack', 0):,}; zero windows {st.get('zero_window', 0):,}; "
        f"tcptrace rexmt data pkts: {st.get('tcptrace_rexmt_data_pkts')}"
    )
    print(f"  MSS options seen: {st['mss']}")
    kinds = sorted(st["tcp_mix_packets"].items())
    print("  TCP packets by kind (bulk = >3000 packets): " + ", ".join(f"{k} {v / n:.1%}" for k, v in kinds))
    print(
        f"DNS: {pct('dns')}: {st.get('dns_queries', 0):,} queries, {st.get('dns_responses', 0):,} responses, "
        f"{st.get('dns_with_cname', 0):,} with a CNAME, {st.get('dns_nxdomain', 0):,} NXDOMAIN"
    )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    hidden = {"_serve": cmd_serve, "_http": cmd_http, "_dns": cmd_dns, "_dns_heavy": cmd_dns_heavy}
    if argv and argv[0] in hidden:
        hidden[argv[0]](argv[1:])
        return 0

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--packets", type=int, default=1_000_000, help="packets to capture (default 1,000,000)")
    p.add_argument(
        "--profile",
        choices=["mixed", "dns-heavy"],
        default="mixed",
        help="mixed: web traffic with a little DNS (default); dns-heavy: the same plus a Kubernetes node's "
        "resolver traffic (ndots:5 search lists, CNAME chains, NXDOMAIN, truncated answers asked again over TCP)",
    )
    p.add_argument(
        "--out",
        type=Path,
        help=f"output pcap (default {DEFAULT_OUT}, with --profile dns-heavy {DNS_HEAVY_OUT})",
    )
    p.add_argument("--loss", type=float, default=0.0025, help="random drop probability on the far path")
    p.add_argument("--rate", type=float, default=1.0, help="scale every generator's pace (default 1.0)")
    p.add_argument("--seed", type=int, default=1, help="seed for the generators' random choices")
    p.add_argument("--timeout", type=float, default=1800, help="give up capturing after this many seconds")
    p.add_argument("--stats", action="store_true", help="print a tshark summary of the capture at the end")
    p.add_argument("--stats-only", type=Path, metavar="PCAP", help="only summarize an existing capture")
    a = p.parse_args(argv)
    if a.stats_only:
        print_stats(capture_stats(a.stats_only))
        return 0

    if os.geteuid() != 0:
        p.error("must run as root (network namespaces, tcpdump)")
    for tool in ("ip", "tcpdump", "curl", "dnsmasq", "ethtool", "iptables"):
        if not shutil.which(tool):
            p.error(f"{tool} not found (see benchmarks/APT_PACKAGES)")
    if not 0 <= a.loss < 0.5:
        p.error("--loss must be in [0, 0.5)")
    check_addresses()
    stale = RES.namespaces()
    if stale:
        log(f"note: other pmb- namespaces exist (another run, or a crashed one): {' '.join(stale)}")

    out = (a.out or (DNS_HEAVY_OUT if a.profile == "dns-heavy" else DEFAULT_OUT)).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    run_id = RES.new_run_id()
    tmp = Path(tempfile.mkdtemp(prefix=f"pmb-{run_id}-"))
    partial = out.with_name(out.name + ".part")
    lab = Lab(run_id, tmp, a.loss, a.rate, a.seed, a.profile)

    def on_term(signum, frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGHUP, on_term)
    t_start = time.monotonic()
    tcpdump_err: list[str] = []
    try:
        log(f"run id {run_id}: building namespaces {' '.join(lab.ns.values())}")
        lab.setup()
        lab.start_services()
        log(f"services up; capturing {a.packets:,} packets on {lab.ifname['c0']} -> {out}")
        td = lab.spawn(
            "tcpdump",
            "cli",
            ["tcpdump", "-n", "-i", lab.ifname["c0"], "-s", "0", "-B", "131072", "-c", str(a.packets)]
            + ["-Z", "root", "-w", str(partial)],
            stderr=subprocess.PIPE,
            text=True,
        )
        ready = threading.Event()

        def read_err():
            for line in td.stderr:
                tcpdump_err.append(line.rstrip())
                if "listening on" in line:
                    ready.set()
            ready.set()

        threading.Thread(target=read_err, daemon=True).start()
        if not ready.wait(10) or td.poll() is not None:
            raise RuntimeError("tcpdump did not start: " + " | ".join(tcpdump_err))
        lab.start_traffic()
        t_cap = time.monotonic()
        last = 0.0
        while td.poll() is None:
            time.sleep(1)
            now = time.monotonic()
            if now - t_cap > a.timeout:
                log("timeout: stopping tcpdump early")
                RES.stop(td, signal.SIGINT, 10)
                break
            if now - last >= 15:
                last = now
                size = partial.stat().st_size if partial.exists() else 0
                log(f"  {now - t_cap:5.0f} s, {size / 1e6:7.1f} MB written")
            for name, proc in lab.procs:
                if name.startswith(("gen-", "httpd", "dnsmasq")) and proc.poll() is not None:
                    raise RuntimeError(f"{name} died with code {proc.returncode}")
        elapsed = time.monotonic() - t_cap
        time.sleep(0.2)
        lab.stop("gen-")
        if td.returncode not in (0, None):
            raise RuntimeError(f"tcpdump failed ({td.returncode}): " + " | ".join(tcpdump_err))
        os.replace(partial, out)
        for line in tcpdump_err:
            if "packets" in line:
                log(f"tcpdump: {line}")
        size = out.stat().st_size
        log(f"wrote {out} ({size:,} bytes) in {elapsed:.1f} s of traffic")
    finally:
        lab.teardown()
        shutil.rmtree(tmp, ignore_errors=True)
        if partial.exists():
            partial.unlink()
        log(f"torn down run {run_id} after {time.monotonic() - t_start:.1f} s")
    if a.stats:
        if shutil.which("tshark"):
            log("summarizing the capture with tshark (minutes for a million packets)")
            print_stats(capture_stats(out))
        else:
            log("--stats needs tshark")
    return 0


if __name__ == "__main__":
    sys.exit(main())
