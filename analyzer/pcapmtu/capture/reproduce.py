"""`--reproduce URL`: the failing request made from inside the container while both captures run, then DF
pings towards the server that bisect the largest packet that passes.

The request runs with the container's own curl (`docker exec`) when it has one; otherwise with the host's
curl inside the container's network namespace (nsenter), which is what docs/capturing.md does by hand; the
metadata says which. The pings always use the host's ping (iputils: `-M do`; busybox's ping has no -M)
inside the container's namespace. Both end up in the captures, where `analyze` reads them too.
"""

from __future__ import annotations

import ipaddress
import socket
import subprocess
import time
from dataclasses import asdict, dataclass, field
from urllib.parse import urlsplit

from ..errors import CaptureFailed
from .namespaces import CHILD_ENV, Namespace

CURL_WRITE_OUT = "%{http_code} %{size_download} %{time_total} %{remote_ip}"
PING_SMALL = 56  # ping's default payload: if this gets no reply, the server does not answer pings
HEADERS = {4: 28, 6: 48}  # IP + ICMP echo header bytes: ping -s N sends N + this on the wire
PROBE_TIMEOUT_S = 30.0


def url_host(url: str) -> tuple[str, str]:
    """The URL's host and the address it names (an address as is; a name resolved by the host)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise CaptureFailed(f"--reproduce {url}: an http:// or https:// URL")
    host = parts.hostname
    try:
        return host, str(ipaddress.ip_address(host))
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, parts.port or 443, proto=socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        raise CaptureFailed(f"--reproduce {url}: cannot resolve {host} on the host: {exc.strerror}") from None
    return host, str(infos[0][4][0])


@dataclass
class Request:
    """The reproduced request (`reproduce` in the metadata)."""

    url: str
    runner: str  # "docker exec" or "nsenter (host curl)"
    command: list[str]
    exit_code: int | None = None
    http_code: int | None = None
    size_download: int | None = None
    time_total_s: float | None = None
    remote_ip: str = ""
    error: str = ""


def request(ns: Namespace, url: str, timeout_s: float) -> Request:
    curl = ["curl", "-sS", "-o", "/dev/null", "--max-time", f"{timeout_s:g}", "-w", CURL_WRITE_OUT, url]
    if ns.kind == "container" and _container_has_curl(ns.name):
        req = Request(url, "docker exec", ["docker", "exec", ns.name, *curl])
    else:
        req = Request(url, "nsenter (host curl)", ns.run(curl))
    try:
        proc = subprocess.run(
            req.command, capture_output=True, text=True, timeout=timeout_s + 10, env=CHILD_ENV, check=False
        )
    except subprocess.TimeoutExpired:
        req.error = f"no end after {timeout_s + 10:g} s"
        return req
    except FileNotFoundError:
        req.error = "curl not found on the host's PATH"
        return req
    req.exit_code = proc.returncode
    req.error = (proc.stderr.strip().splitlines() or [""])[-1]
    fields = proc.stdout.split()
    if len(fields) >= 3:
        req.http_code = int(fields[0]) if fields[0].isdigit() else None
        req.size_download = int(float(fields[1]))
        req.time_total_s = float(fields[2])
        req.remote_ip = fields[3] if len(fields) > 3 else ""
    return req


def _container_has_curl(name: str) -> bool:
    try:
        proc = subprocess.run(
            ["docker", "exec", name, "curl", "--version"],
            capture_output=True,
            timeout=PROBE_TIMEOUT_S,
            env=CHILD_ENV,
            check=False,
        )
    except (subprocess.TimeoutExpired, FileNotFoundError):
        return False
    return proc.returncode == 0


@dataclass
class Bisection:
    """DF pings towards the server (`ping` in the metadata): sizes are ping -s payloads, `*_ip` IP bytes."""

    target: str
    headers: int
    tries: list[dict] = field(default_factory=list)
    largest_ok: int | None = None
    smallest_lost: int | None = None
    answered: bool = False  # the small ping got a reply: the bisection means something

    def as_dict(self) -> dict:
        doc = asdict(self)
        doc["largest_ok_ip"] = self.largest_ok + self.headers if self.largest_ok is not None else None
        doc["smallest_lost_ip"] = (
            self.smallest_lost + self.headers if self.smallest_lost is not None else None
        )
        return doc


def bisect(ns: Namespace, target: str, mtu: int, wait_s: float = 1.0) -> Bisection:
    """The largest DF ping that gets a reply, between the default size and the container's MTU."""
    version = ipaddress.ip_address(target).version
    result = Bisection(target, HEADERS[version])

    def passes(size: int) -> bool:
        cmd = ns.run(
            ["ping", "-n", f"-{version}", "-M", "do", "-s", str(size), "-c", "1", "-W", f"{wait_s:g}", target]
        )
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=wait_s + 10, env=CHILD_ENV, check=False
        )
        said = (proc.stderr.strip().splitlines() or [""])[-1]
        result.tries.append({"size": size, "ok": proc.returncode == 0} | ({"said": said} if said else {}))
        return proc.returncode == 0

    low, high = PING_SMALL, mtu - result.headers
    if high < low or not passes(low):
        return result
    result.answered = True
    result.largest_ok = low
    if passes(high):
        result.largest_ok = high
        return result
    result.smallest_lost = high
    while high - low > 1:  # invariant: low passed, high did not
        middle = (low + high) // 2
        if passes(middle):
            low = result.largest_ok = middle
        else:
            high = result.smallest_lost = middle
        time.sleep(0.05)
    return result
