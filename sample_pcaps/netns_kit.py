"""Network-namespace kit shared by the lab (sample_pcaps/lab*.py) and the benchmark capture generator
(benchmarks/make_capture.py). Python stdlib only.

- Addresses: traffic may only ever use ALLOWED_RANGES (private, benchmarking and ULA ranges) and loopback;
  allowed() says whether an address or subnet lies in them. Both tools check every address they configure
  before anything is created.
- Resources: every namespace, /etc/netns/<ns> dir and child process a program creates is registered in one
  Resources object, so one call (cleanup) ends exactly those processes (by PID), kills whatever still runs
  inside its own namespaces (by PID: only descendants of its processes can be there) and deletes exactly its
  namespaces -- never anything else. Namespace names must start with the object's prefix (pml- for the lab,
  pmb- for the benchmark). Links, addresses, routes and iptables rules are all made inside those namespaces
  (veth pairs are created in one namespace with the peer in another, never in the root namespace), so
  deleting the namespaces removes them too.
- Plumbing on top of it: veth pairs, bridges, MTU, addresses, default routes, sysctls, ethtool offloads.
- DualStackHTTPServer: the threading HTTP server base both test web servers use (IPv4 and IPv6 on "::").

Both tools put this directory on sys.path: the lab's scripts live here; benchmarks/make_capture.py inserts
sample_pcaps/ itself (a plain module, no packaging).
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import secrets
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from http.server import ThreadingHTTPServer
from pathlib import Path

# Only these ranges may ever be configured: private (RFC 1918), benchmarking (RFC 2544) and ULA (RFC 4193).
ALLOWED_RANGES = [
    ipaddress.ip_network(n) for n in ("172.17.0.0/16", "10.66.0.0/24", "198.18.0.0/15", "fd00::/8")
]
LOOPBACK_RANGES = [ipaddress.ip_network(n) for n in ("127.0.0.0/8", "::1/128")]

ETC_NETNS = Path("/etc/netns")  # `ip netns exec` bind-mounts /etc/netns/<ns>/resolv.conf
READY_TIMEOUT_S = 10.0
CAPTURE_TOOLS = ("tcpdump", "dumpcap")  # stopped with SIGINT, so they flush what they have
# ethtool -K arguments for wire-sized packets with valid checksums in the captures.
OFFLOADS_OFF = ("tso", "off", "gso", "off", "gro", "off", "tx", "off")
# Environment for every child: no proxies (nothing may leave the namespaces), stable messages.
CHILD_ENV = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()} | {"LC_ALL": "C"}


def allowed(net: str | ipaddress.IPv4Network | ipaddress.IPv6Network, *, loopback: bool = True) -> bool:
    """Whether an address or subnet lies inside ALLOWED_RANGES (or loopback, unless loopback=False)."""
    net = ipaddress.ip_network(net, strict=False)
    ranges = ALLOWED_RANGES + (LOOPBACK_RANGES if loopback else [])
    return any(net.version == r.version and net.subnet_of(r) for r in ranges)


class LabError(RuntimeError):
    """A namespace set-up could not be built, run or verified."""


class Aborted(LabError):
    """SIGINT/SIGTERM arrived; everything is being torn down."""


class Resources:
    """Every netns, /etc/netns dir and child process this process created, so one call undoes them all.

    `warn`, if given, is told about a namespace that could not be deleted (otherwise that is silent).
    """

    def __init__(self, prefix: str, warn: Callable[[str], None] | None = None) -> None:
        self.prefix = prefix
        self.warn = warn
        self.lock = threading.RLock()
        self.procs: dict[int, subprocess.Popen] = {}
        self.netns: set[str] = set()
        self.etc_dirs: set[Path] = set()
        self.created_etc_netns = False  # /etc/netns itself, removed again when empty
        self.aborted = threading.Event()
        self.run_ids: set[str] = set()

    def check(self) -> None:
        if self.aborted.is_set():
            raise Aborted("aborted by signal")

    # --- processes ---------------------------------------------------------------------------------------

    def popen(self, cmd: list[str], **kwargs) -> subprocess.Popen:
        self.check()
        proc = subprocess.Popen(cmd, env=CHILD_ENV, **kwargs)
        with self.lock:
            self.procs[proc.pid] = proc
        return proc

    def spawn(self, ns: str, cmd: list[str], **kwargs) -> subprocess.Popen:
        """Start `cmd` inside netns `ns` (`ip netns exec` execs it: the PID is the command's own)."""
        return self.popen(["ip", "netns", "exec", ns, *cmd], **kwargs)

    def stop(self, proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 5.0) -> int | None:
        """Signal one child we started (by its PID) and wait for it; SIGKILL if it lingers."""
        if proc.poll() is None:
            try:
                proc.send_signal(sig)
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout)
        with self.lock:
            self.procs.pop(proc.pid, None)
        return proc.returncode

    def execute(self, cmd: list[str], *, ns: str | None = None, check: bool = True, timeout: float = 60.0):
        """Run a command (inside netns `ns` if given) to completion; LabError with its stderr on failure."""
        full = ["ip", "netns", "exec", ns, *cmd] if ns else cmd
        proc = self.popen(full, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop(proc, signal.SIGKILL)
            raise LabError(f"timed out after {timeout}s: {' '.join(full)}") from None
        finally:
            with self.lock:
                self.procs.pop(proc.pid, None)
        if check and proc.returncode != 0:
            raise LabError(f"command failed (exit {proc.returncode}): {' '.join(full)}\n{err.strip()}")
        return subprocess.CompletedProcess(full, proc.returncode, out, err)

    def wait_for(
        self, path: Path, marker: str, proc: subprocess.Popen, what: str, timeout: float = READY_TIMEOUT_S
    ) -> None:
        """Wait until `marker` appears in the log `path` of `proc`; LabError if it exits or times out first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check()
            text = path.read_text(errors="replace") if path.exists() else ""
            if marker in text:
                return
            if proc.poll() is not None:
                raise LabError(f"{what} exited with {proc.returncode} before it was ready:\n{text.strip()}")
            time.sleep(0.05)
        raise LabError(f"{what} not ready after {timeout}s (no {marker!r} in {path})")

    # --- namespaces ----------------------------------------------------------------------------------------

    def namespaces(self) -> list[str]:
        """Namespaces with this prefix that exist now (ours, another run's, or a crashed run's)."""
        out = self.execute(["ip", "netns", "list"]).stdout
        return [ln.split()[0] for ln in out.splitlines() if ln.startswith(self.prefix)]

    def new_run_id(self) -> str:
        """4 hex digits, unused by any existing <prefix><id>-* namespace and by this process."""
        existing = self.execute(["ip", "netns", "list"]).stdout
        with self.lock:
            while True:
                rid = secrets.token_hex(2)
                if rid not in self.run_ids and f"{self.prefix}{rid}-" not in existing:
                    self.run_ids.add(rid)
                    return rid

    def add_netns(self, name: str) -> None:
        """A new namespace with its loopback up."""
        assert name.startswith(self.prefix), name
        with self.lock:
            self.netns.add(name)
        self.execute(["ip", "netns", "add", name])
        self.ip(name, "link", "set", "lo", "up")

    def del_netns(self, name: str) -> None:
        """Delete one of our namespaces, after killing (by PID) whatever still runs inside it, and its
        /etc/netns dir if we made one."""
        with self.lock:
            if name not in self.netns:
                return
            self.netns.discard(name)
        # Only descendants of our own processes can be in a namespace this process created.
        pids = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True, check=False)
        for pid in pids.stdout.split():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), signal.SIGKILL)
        proc = subprocess.run(["ip", "netns", "del", name], capture_output=True, text=True, check=False)
        if proc.returncode != 0 and self.warn:
            self.warn(f"could not delete namespace {name}: {proc.stderr.strip()}")
        self.del_etc_dir(ETC_NETNS / name)

    def add_etc_dir(self, path: Path) -> None:
        assert path.name.startswith(self.prefix), path
        with self.lock:
            self.etc_dirs.add(path)
            if not path.parent.exists():
                self.created_etc_netns = True
        path.mkdir(parents=True, exist_ok=True)

    def del_etc_dir(self, path: Path) -> None:
        with self.lock:
            if path not in self.etc_dirs:
                return
            self.etc_dirs.discard(path)
        shutil.rmtree(path, ignore_errors=True)

    def resolv_conf(self, ns: str, text: str) -> None:
        """/etc/netns/<ns>/resolv.conf: what resolv.conf is for programs run with `ip netns exec <ns>`."""
        etc = ETC_NETNS / ns
        self.add_etc_dir(etc)
        (etc / "resolv.conf").write_text(text)

    def cleanup(self) -> None:
        """Kill our children, delete our namespaces and /etc/netns dirs. Safe to call repeatedly."""
        with self.lock:
            procs = list(self.procs.values())
        for proc in procs:
            # Captures get SIGINT so they flush what they have; everything else SIGTERM.
            capture = any(Path(str(arg)).name in CAPTURE_TOOLS for arg in proc.args)
            self.stop(proc, signal.SIGINT if capture else signal.SIGTERM, 3)
        for name in sorted(self.netns):
            self.del_netns(name)
        for path in sorted(self.etc_dirs):
            self.del_etc_dir(path)
        if self.created_etc_netns:
            with contextlib.suppress(OSError):
                ETC_NETNS.rmdir()  # only if empty: other tools may have put their own dirs there

    # --- plumbing (all inside our namespaces) ----------------------------------------------------------------

    def ip(self, ns: str, *args: str) -> subprocess.CompletedProcess:
        return self.execute(["ip", "-n", ns, *args])

    def veth(self, ns_a: str, dev_a: str, ns_b: str, dev_b: str) -> None:
        """A veth pair made inside `ns_a` with its peer in `ns_b`: nothing ever touches the root namespace."""
        self.ip(ns_a, "link", "add", dev_a, "type", "veth", "peer", "name", dev_b, "netns", ns_b)

    def bridge(self, ns: str, name: str, *ports: str) -> None:
        self.ip(ns, "link", "add", name, "type", "bridge")
        for port in ports:
            self.ip(ns, "link", "set", port, "master", name)

    def link_up(self, ns: str, dev: str, mtu: int | None = None) -> None:
        self.ip(ns, "link", "set", dev, *(("mtu", str(mtu)) if mtu is not None else ()), "up")

    def addr(self, ns: str, dev: str, cidr: str) -> None:
        """An address ("a/len") on `dev`; IPv6 ones with nodad: usable at once, no duplicate address detection."""
        if ipaddress.ip_interface(cidr).version == 6:
            self.ip(ns, "-6", "addr", "add", cidr, "dev", dev, "nodad")
        else:
            self.ip(ns, "addr", "add", cidr, "dev", dev)

    def default_route(self, ns: str, gateway: str) -> None:
        family = ["-6"] if ipaddress.ip_address(gateway).version == 6 else []
        self.ip(ns, *family, "route", "add", "default", "via", gateway)

    def sysctl(self, ns: str, *settings: str) -> None:
        self.execute(["sysctl", "-q", "-w", *settings], ns=ns)

    def offloads(self, ns: str, dev: str, features: Sequence[str] = OFFLOADS_OFF, *, lenient: bool = False):
        """`ethtool -K dev <feature> <on|off> ...`. With lenient, a device that refuses the whole set gets each
        feature alone and the ones it still refuses are returned instead of raising LabError."""
        cmd = ["ethtool", "-K", dev, *features]
        if not lenient:
            self.execute(cmd, ns=ns)
            return []
        if self.execute(cmd, ns=ns, check=False).returncode == 0:
            return []
        refused = []
        for feature, value in zip(features[::2], features[1::2], strict=True):
            if self.execute(["ethtool", "-K", dev, feature, value], ns=ns, check=False).returncode != 0:
                refused.append(feature)
        return refused


class DualStackHTTPServer(ThreadingHTTPServer):
    """Threading HTTP server on "::" that takes IPv4 clients too (IPV6_V6ONLY off); daemon worker threads."""

    address_family = socket.AF_INET6
    daemon_threads = True

    def server_bind(self) -> None:
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()
