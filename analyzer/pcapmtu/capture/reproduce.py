"""`--reproduce URL`: the failing request made from inside the container while both captures run, then DF
pings towards the server that bisect the largest packet that passes.

The request runs with the container's own curl (`docker exec`) when it has one; otherwise with the host's
curl inside the container's network namespace (nsenter), which is what docs/capturing.md does by hand; the
metadata says which. The pings always use the host's ping (iputils: `-M do`; busybox's ping has no -M)
inside the container's namespace. Both end up in the captures, where `analyze` reads them too.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import subprocess
import threading
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


class Stopped(Exception):
    """The session ended (Ctrl-C, the duration, an error) while a probe was running or about to start."""


class Probes:
    """Runs the reproduction's children one at a time, so that the session can end the running one (by its
    PID) and start no other when it stops. (`docker exec` ends; the curl inside the container then ends by
    its own --max-time.)"""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.current: subprocess.Popen | None = None
        self.stopped = threading.Event()

    def run(self, cmd: list[str], timeout: float, cleanup: bool = False) -> subprocess.CompletedProcess:
        """`cmd` to its end; Stopped once the session stops, unless it is `cleanup` (undoing a probe's effect)."""
        with self.lock:
            if self.stopped.is_set() and not cleanup:
                raise Stopped
            proc = subprocess.Popen(
                cmd,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=CHILD_ENV,
                start_new_session=True,
            )
            self.current = proc
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise
        finally:
            with self.lock:
                self.current = None
        if self.stopped.is_set() and not cleanup:
            raise Stopped
        return subprocess.CompletedProcess(cmd, proc.returncode, out, err)

    def stop(self) -> None:
        self.stopped.set()
        with self.lock:
            proc = self.current
        if proc is not None and proc.poll() is None:
            proc.terminate()


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


def request(ns: Namespace, url: str, timeout_s: float, probes: Probes) -> Request:
    curl = ["curl", "-sS", "-o", "/dev/null", "--max-time", f"{timeout_s:g}", "-w", CURL_WRITE_OUT, url]
    if ns.kind == "container" and _container_has_curl(ns.name, probes):
        req = Request(url, "docker exec", ["docker", "exec", ns.name, *curl])
    else:
        req = Request(url, "nsenter (host curl)", ns.run(curl))
    try:
        proc = probes.run(req.command, timeout_s + 10)
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


def _container_has_curl(name: str, probes: Probes) -> bool:
    try:
        proc = probes.run(["docker", "exec", name, "curl", "--version"], PROBE_TIMEOUT_S)
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
    # A "fragmentation needed" the pings drew (from the docker host itself, when its uplink is the narrow
    # hop) leaves the container a cached path MTU for 10 minutes, and with it a smaller SYN MSS: the failure
    # would vanish until it expires. Such an entry the pings made is flushed again; one that was there
    # before is left alone.
    cached_mtu_before: int | None = None
    cached_mtu_after: int | None = None
    cache_flushed: bool = False

    def as_dict(self) -> dict:
        doc = asdict(self)
        doc["largest_ok_ip"] = self.largest_ok + self.headers if self.largest_ok is not None else None
        doc["smallest_lost_ip"] = (
            self.smallest_lost + self.headers if self.smallest_lost is not None else None
        )
        return doc


def bisect(ns: Namespace, target: str, mtu: int, probes: Probes, wait_s: float = 1.0) -> Bisection:
    """The largest DF ping that gets a reply, between the default size and the container's MTU."""
    version = ipaddress.ip_address(target).version
    result = Bisection(target, HEADERS[version])

    def passes(size: int) -> bool:
        ping = ["ping", "-n", f"-{version}", "-M", "do", "-s", str(size)]
        ping += ["-c", "1", "-W", f"{wait_s:g}", target]
        proc = probes.run(ns.run(ping), wait_s + 10)
        said = (proc.stderr.strip().splitlines() or [""])[-1]
        result.tries.append({"size": size, "ok": proc.returncode == 0} | ({"said": said} if said else {}))
        return proc.returncode == 0

    result.cached_mtu_before = cached_mtu(ns, target, probes)
    try:
        _bisect(result, passes, mtu)
    finally:
        result.cached_mtu_after = cached_mtu(ns, target, probes, cleanup=True)
        if result.cached_mtu_after is not None and result.cached_mtu_before is None:
            flush = probes.run(ns.run(["ip", f"-{version}", "route", "flush", "cache"]), 10, cleanup=True)
            result.cache_flushed = flush.returncode == 0
    return result


def cached_mtu(ns: Namespace, target: str, probes: Probes, cleanup: bool = False) -> int | None:
    """The path MTU the namespace has cached towards `target` (`ip route get`: `cache ... mtu N`), if any."""
    try:
        proc = probes.run(ns.run(["ip", "-json", "route", "get", target]), 10, cleanup=cleanup)
        routes = json.loads(proc.stdout or "[]") if proc.returncode == 0 else []
    except (json.JSONDecodeError, subprocess.TimeoutExpired):
        return None
    for route in routes:
        # a learned path MTU is an exception that expires (IPv4 also says "cache"); a route's own mtu does not
        for metric in route.get("metrics", []) if "expires" in route else []:
            if isinstance(metric, dict) and isinstance(metric.get("mtu"), int):
                return metric["mtu"]
    return None


def _bisect(result: Bisection, passes, mtu: int) -> None:
    low, high = PING_SMALL, mtu - result.headers
    if high < low or not passes(low):
        return
    result.answered = True
    result.largest_ok = low
    if passes(high):
        result.largest_ok = high
        return
    result.smallest_lost = high
    while high - low > 1:  # invariant: low passed, high did not
        middle = (low + high) // 2
        if passes(middle):
            low = result.largest_ok = middle
        else:
            high = result.smallest_lost = middle
        time.sleep(0.05)
