"""One tcpdump: its command line, started, waited for until it listens, stopped so that it flushes.

Each runs in a session of its own (a Ctrl-C on the terminal reaches pcapmtu, which stops them in order) and
with a parent-death signal: were pcapmtu killed outright, the kernel would still send each tcpdump SIGINT,
so none outlives it.
"""

from __future__ import annotations

import ctypes
import re
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import CaptureFailed
from .namespaces import CHILD_ENV, Namespace

# tcp, ICMP and ICMPv6 (size reports, DF pings), DNS (names), and the outer packets of VXLAN (4789, and
# 8472: Linux's and flannel's default), Geneve (6081), GRE (47) and IP-in-IP (4), which pcapmtu decapsulates:
# on an overlay node's uplink the container's traffic is only these. The same again behind one VLAN tag.
BASE_FILTER = (
    "tcp or icmp or icmp6 or port 53 or udp port 4789 or udp port 8472 or udp port 6081 or ip proto 47 "
    "or ip proto 4"
)
DEFAULT_FILTER = f"{BASE_FILTER} or (vlan and ({BASE_FILTER}))"  # on Ethernet; libpcap has `vlan` there only
# 512 bytes: every header (Ethernet, a VLAN tag, IPv6, TCP with options, an encapsulation) plus the start
# of the payload where TLS hellos and a classic DNS answer (at most 512 bytes over UDP, RFC 1035) are.
DEFAULT_SNAPLEN = 512
READY_MARK = "listening on"
READY_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 5.0
STATS = {
    "captured": re.compile(r"^(\d+) packets? captured", re.M),
    "received": re.compile(r"^(\d+) packets? received by filter", re.M),
    "dropped": re.compile(r"^(\d+) packets? dropped by kernel", re.M),
}
PR_SET_PDEATHSIG = 1


def default_filter(link_type: str | None) -> str:
    """The default filter for an interface of this `ip link` type: the VLAN half only on Ethernet (libpcap
    refuses `vlan` on tunnels, `-i any` and other cooked or raw-IP link types)."""
    return DEFAULT_FILTER if link_type in ("ether", None) else BASE_FILTER


def command(iface: str, out: Path, snaplen: int, bpf: str) -> list[str]:
    """The tcpdump command line (docs/capturing.md explains every option)."""
    return [
        "tcpdump",
        "-i",
        iface,
        "-s",
        str(snaplen),
        "-U",
        "--immediate-mode",
        "-n",
        "-Z",
        "root",
        "-w",
        str(out),
        bpf,
    ]


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGINT, 0, 0, 0)


@dataclass
class Tcpdump:
    """A tcpdump writing `out`, started in `ns` (None: the host's namespace); its stderr goes to `log`."""

    role: str  # container or host
    iface: str
    out: Path
    log: Path
    argv: list[str]
    bpf: str = ""
    proc: subprocess.Popen | None = None
    stats: dict[str, int | None] = field(default_factory=dict)

    @classmethod
    def start(cls, role: str, ns: Namespace | None, iface: str, out: Path, log: Path, snaplen: int, bpf: str):
        argv = command(iface, out, snaplen, bpf)
        argv = ns.run(argv) if ns else argv
        dump = cls(role, iface, out, log, argv, bpf)
        with log.open("w") as fh:
            dump.proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=fh,
                stderr=fh,
                env=CHILD_ENV,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        return dump

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def said(self) -> str:
        """tcpdump's own words so far: its stderr."""
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def failure(self) -> str:
        """tcpdump's own error line: its last `tcpdump: ...` line that is not a status line (it may add a
        line of its own in parentheses after it), else its last line."""
        lines = [ln.strip() for ln in self.said().splitlines() if ln.strip()]
        lines = [ln for ln in lines if READY_MARK not in ln and not ln.startswith("tcpdump: verbose output")]
        own = [ln for ln in lines if ln.startswith("tcpdump:")]
        if own or lines:
            return (own or lines)[-1]
        return f"exited with code {self.proc.returncode if self.proc else '?'}"

    def wait_ready(self, deadline: float) -> None:
        """Until tcpdump says it listens; CaptureFailed with its own message if it exits or stays silent."""
        while time.monotonic() < deadline:
            if READY_MARK in self.said():
                return
            if not self.running():
                raise CaptureFailed(
                    f"tcpdump on the {self.role} ({self.iface}) did not start: {self.failure()}"
                )
            time.sleep(0.05)
        raise CaptureFailed(
            f"tcpdump on the {self.role} ({self.iface}) did not say '{READY_MARK}' in {READY_TIMEOUT_S:g} s"
        )

    def stop(self) -> None:
        """SIGINT (tcpdump writes what it holds and closes the file), SIGKILL if it lingers; then its counts."""
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            try:
                proc.send_signal(signal.SIGINT)
                proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(STOP_TIMEOUT_S)
        text = self.said()
        for name, pattern in STATS.items():
            m = pattern.search(text)
            self.stats[name] = int(m.group(1)) if m else None

    def size(self) -> int:
        try:
            return self.out.stat().st_size
        except OSError:
            return 0
