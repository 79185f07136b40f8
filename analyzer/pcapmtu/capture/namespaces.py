"""Which network namespace to capture in: a Docker container's, a process's, or a named one (`ip netns`).

Every command meant for that namespace runs through `nsenter --net=PATH`, which enters the network namespace
only: the host's binaries (tcpdump, ip, ping, curl) run with the container's network, as docs/capturing.md
does by hand. nsenter execs the command, so a started process's PID is the command's own.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ..errors import CaptureFailed

NETNS_DIR = Path("/run/netns")  # where `ip netns add NAME` bind-mounts its namespaces
TOOLS = ("tcpdump", "nsenter", "ip")  # what every capture needs on the host's PATH
DOCKER_TIMEOUT_S = 20.0
# What a child inherits: stable messages (tcpdump's "listening on" is waited for), no proxies for probes.
CHILD_ENV = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()} | {"LC_ALL": "C"}


def run_tool(cmd: list[str], timeout_s: float, what: str) -> subprocess.CompletedProcess:
    """`cmd` with the children's environment, its output kept; a tool that does not answer in time is one line
    (CaptureFailed), never a hang."""
    try:
        return subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout_s, env=CHILD_ENV, check=False
        )
    except subprocess.TimeoutExpired:
        raise CaptureFailed(f"{what} did not answer in {timeout_s:g} s") from None


def last_said(proc: subprocess.CompletedProcess) -> str:
    """The last line a failed tool wrote on stderr: its own words for what went wrong."""
    return (proc.stderr.strip().splitlines() or ["(no message)"])[-1]


@dataclass(frozen=True)
class Namespace:
    """The namespace the container-side capture runs in, and how it was named."""

    path: str  # /proc/PID/ns/net or /run/netns/NAME: what nsenter --net= takes
    kind: str  # "container", "pid" or "netns"
    name: str  # the container name or ID, the PID, or the netns name, as the user gave it
    pid: int | None = None  # the container's main process, when known

    def run(self, cmd: list[str]) -> list[str]:
        """`cmd` to run inside this namespace."""
        return ["nsenter", f"--net={self.path}", *cmd]

    def describe(self) -> dict:
        return {"kind": self.kind, "name": self.name, "pid": self.pid, "path": self.path}


def require_root() -> None:
    """tcpdump needs CAP_NET_RAW and nsenter CAP_SYS_ADMIN: without root, nothing would start."""
    if os.geteuid() != 0:
        raise CaptureFailed("pcapmtu capture needs root (tcpdump and nsenter): run it with sudo")


def require_tools(tools: tuple[str, ...] = TOOLS) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        raise CaptureFailed(
            f"{', '.join(missing)} not found on PATH; install {' and '.join(missing)} on the host "
            "(Debian: tcpdump, util-linux, iproute2)"
        )


def of_container(name: str) -> Namespace:
    """The namespace of a running Docker container (`docker inspect`; DOCKER_HOST is honoured)."""
    if shutil.which("docker") is None:
        raise CaptureFailed("docker not found on PATH: --container needs the docker CLI (or use --pid PID)")
    cmd = ["docker", "inspect", "--type", "container", "-f", "{{.State.Pid}} {{.State.Running}}", name]
    proc = run_tool(cmd, DOCKER_TIMEOUT_S, f"docker inspect {name}")
    if proc.returncode != 0:
        said = last_said(proc)
        if "no such" in said.lower():
            raise CaptureFailed(f"no such container: {name} (docker ps lists the running ones)")
        raise CaptureFailed(f"docker inspect {name} failed: {said}")
    pid_text, running = (proc.stdout.split() + ["", ""])[:2]
    if running != "true" or not pid_text.isdigit() or int(pid_text) == 0:
        raise CaptureFailed(f"container {name} is not running: start it first (docker start {name})")
    pid = int(pid_text)
    return Namespace(_ns_of_pid(pid, f"container {name}"), "container", name, pid)


def of_pid(pid: int) -> Namespace:
    """The namespace of any process: a podman or containerd container's, or a plain `unshare -n` shell's."""
    if pid <= 0:
        raise CaptureFailed(f"--pid {pid}: a process ID is a positive number")
    return Namespace(_ns_of_pid(pid, f"process {pid}"), "pid", str(pid), pid)


def of_netns(name: str) -> Namespace:
    """A namespace made with `ip netns add NAME` (bind-mounted under /run/netns)."""
    if not name or "/" in name or name in (".", ".."):
        raise CaptureFailed(f"--netns {name!r}: a name as `ip netns list` shows it")
    path = NETNS_DIR / name
    if not path.exists():
        raise CaptureFailed(f"no such network namespace: {name} (ip netns list shows them)")
    return Namespace(str(path), "netns", name)


def _ns_of_pid(pid: int, what: str) -> str:
    path = Path(f"/proc/{pid}/ns/net")
    try:
        os.stat(path)
    except FileNotFoundError:
        raise CaptureFailed(f"{what}: no process {pid} (it has exited?)") from None
    except PermissionError:
        raise CaptureFailed(f"{what}: cannot open {path}: permission denied") from None
    return str(path)


def same_as_ours(ns: Namespace) -> bool:
    """Whether the namespace is the one pcapmtu itself runs in: then there is no container side to capture."""
    try:
        return os.stat(ns.path).st_ino == os.stat("/proc/self/ns/net").st_ino
    except OSError:
        return False
