"""Host-side plumbing of the pcapmtu lab: owned resources, commands, certificates, tool versions.

Everything the lab starts or creates is registered in RES, so one call (RES.cleanup) kills exactly our
children (by PID) and deletes exactly our namespaces and /etc/netns dirs -- never anything else.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import lab_scenarios as cat

PREFIX = "pml-"
ETC_NETNS = Path("/etc/netns")  # `ip netns exec` bind-mounts /etc/netns/<ns>/resolv.conf
READY_TIMEOUT_S = 10.0
CAPTURE_TOOLS = ("tcpdump", "dumpcap")
# Environment for every child: no proxies (nothing may leave the namespaces), stable messages.
CHILD_ENV = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()} | {"LC_ALL": "C"}


class LabError(RuntimeError):
    """A scenario could not be built, run or verified."""


class Aborted(LabError):
    """SIGINT/SIGTERM arrived; everything is being torn down."""


# --- resources this process owns -------------------------------------------------------------------------


class Resources:
    """Every netns, /etc/netns dir and child process this process created, so one call undoes them all."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.procs: dict[int, subprocess.Popen] = {}
        self.netns: set[str] = set()
        self.etc_dirs: set[Path] = set()
        self.created_etc_netns = False  # /etc/netns itself, removed again when empty
        self.aborted = threading.Event()

    def check(self) -> None:
        if self.aborted.is_set():
            raise Aborted("aborted by signal")

    def popen(self, cmd: list[str], **kwargs) -> subprocess.Popen:
        self.check()
        proc = subprocess.Popen(cmd, env=CHILD_ENV, **kwargs)
        with self.lock:
            self.procs[proc.pid] = proc
        return proc

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

    def add_netns(self, name: str) -> None:
        assert name.startswith(PREFIX), name
        with self.lock:
            self.netns.add(name)
        execute(["ip", "netns", "add", name])

    def del_netns(self, name: str) -> None:
        with self.lock:
            if name not in self.netns:
                return
            self.netns.discard(name)
        subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)

    def add_etc_dir(self, path: Path) -> None:
        assert path.name.startswith(PREFIX), path
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


RES = Resources()


def execute(cmd: list[str], *, ns: str | None = None, check: bool = True, timeout: float = 60.0):
    """Run a command (inside netns `ns` if given) to completion; LabError with its stderr on failure."""
    full = ["ip", "netns", "exec", ns, *cmd] if ns else cmd
    proc = RES.popen(full, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        RES.stop(proc, signal.SIGKILL)
        raise LabError(f"timed out after {timeout}s: {' '.join(full)}") from None
    finally:
        with RES.lock:
            RES.procs.pop(proc.pid, None)
    if check and proc.returncode != 0:
        raise LabError(f"command failed (exit {proc.returncode}): {' '.join(full)}\n{err.strip()}")
    return subprocess.CompletedProcess(full, proc.returncode, out, err)


def wait_for(path: Path, marker: str, proc: subprocess.Popen, what: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        RES.check()
        text = path.read_text(errors="replace") if path.exists() else ""
        if marker in text:
            return
        if proc.poll() is not None:
            raise LabError(f"{what} exited with {proc.returncode} before it was ready:\n{text.strip()}")
        time.sleep(0.05)
    raise LabError(f"{what} not ready after {READY_TIMEOUT_S}s (no {marker!r} in {path})")


# --- certificates ----------------------------------------------------------------------------------------

CERT_EXTENSIONS = """
[ca1]
basicConstraints = critical,CA:TRUE,pathlen:1
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[ca2]
basicConstraints = critical,CA:TRUE,pathlen:0
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[leaf]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = @alt
[alt]
"""
# Certificates the server sends (leaf + 2 intermediates) must span several full-size segments.
MIN_CHAIN_BYTES = 6000
LEAF_EXTRA_SANS = 120


def make_pki(workdir: Path) -> dict:
    """Root -> intermediate 1 -> intermediate 2 -> leaf, all RSA 4096; the leaf has many SANs.

    Keys live in `workdir` (a temp dir) only: nothing secret is ever written next to the captures.
    """
    sans = [cat.NAMES["api"], cat.NAMES["jenkins"], "*.example"]
    sans += [f"mirror-{i:03d}.updates.jenkins-updates.example" for i in range(LEAF_EXTRA_SANS)]
    alt = "".join(f"DNS.{i} = {name}\n" for i, name in enumerate(sans, 1))
    (workdir / "ext.cnf").write_text(CERT_EXTENSIONS + alt)
    w = str(workdir)
    subj = "/O=pcapmtu lab/OU=test only/CN="

    def openssl(args: str, *quoted: str) -> None:
        execute(["openssl", *args.split(), *quoted])

    def new_key(name: str, cn: str) -> None:
        openssl(
            f"req -new -newkey rsa:4096 -nodes -keyout {w}/{name}.key -out {w}/{name}.csr -subj", subj + cn
        )

    def sign(name: str, issuer: str, section: str, serial: int) -> None:
        openssl(
            f"x509 -req -in {w}/{name}.csr -CA {w}/{issuer}.pem -CAkey {w}/{issuer}.key -set_serial {serial} "
            f"-days 3650 -sha256 -extfile {w}/ext.cnf -extensions {section} -out {w}/{name}.pem"
        )

    openssl(
        f"req -x509 -newkey rsa:4096 -nodes -keyout {w}/root.key -out {w}/root.pem -days 3650 -sha256 "
        "-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign -subj",
        subj + "pcapmtu Lab Root CA",
    )
    new_key("int1", "pcapmtu Lab Intermediate CA 1")
    sign("int1", "root", "ca1", 4097)
    new_key("int2", "pcapmtu Lab Intermediate CA 2")
    sign("int2", "int1", "ca2", 4098)
    new_key("leaf", cat.NAMES["jenkins"])
    sign("leaf", "int2", "leaf", 4099)
    served = ("leaf", "int2", "int1")  # what the server sends; the client trusts root.pem
    chain = workdir / "chain.pem"
    chain.write_text("".join((workdir / f"{n}.pem").read_text() for n in served))
    sizes = {n: len(_der(workdir / f"{n}.pem")) for n in served}
    if sum(sizes.values()) < MIN_CHAIN_BYTES:
        raise LabError(f"certificate chain is only {sum(sizes.values())} bytes; need > {MIN_CHAIN_BYTES}")
    return {"root": workdir / "root.pem", "chain": chain, "key": workdir / "leaf.key", "der_sizes": sizes}


def _der(pem: Path) -> bytes:
    cmd = ["openssl", "x509", "-in", str(pem), "-outform", "DER"]
    return subprocess.run(cmd, capture_output=True, check=True).stdout


def tool_versions() -> dict:
    def first_line(cmd: list[str]) -> str:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env=CHILD_ENV)
        return (proc.stdout or proc.stderr).strip().splitlines()[0] if (proc.stdout or proc.stderr) else "?"

    return {
        "kernel": os.uname().release,
        "python": sys.version.split()[0],
        "tcpdump": first_line(["tcpdump", "--version"]),
        "tshark": first_line(["tshark", "--version"]),
        "curl": first_line(["curl", "--version"]),
        "openssl": first_line(["openssl", "version"]),
        "dnsmasq": first_line(["dnsmasq", "--version"]),
        "iproute2": first_line(["ip", "-V"]),
        "iptables": first_line(["iptables", "-V"]),
        "ethtool": first_line(["ethtool", "--version"]),
    }


_used_run_ids: set[str] = set()


def new_run_id() -> str:
    """4 hex digits, unused by any existing pml-* namespace and by this process."""
    existing = execute(["ip", "netns", "list"]).stdout
    with RES.lock:
        while True:
            rid = secrets.token_hex(2)
            if rid not in _used_run_ids and f"{PREFIX}{rid}-" not in existing:
                _used_run_ids.add(rid)
                return rid
