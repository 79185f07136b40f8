"""A real dockerd (Debian's docker.io) for the tests, inside a network namespace of its own, and a tiny image
built locally (no registry is reachable): `docker import` of a root filesystem with busybox-static and curl.

dockerd runs through `nsenter --net` (not `ip netns exec`, whose fresh /sys hides the cgroup mounts dockerd
needs), so docker0, the veths and every iptables rule dockerd adds live in that namespace and nothing touches
the machine's own network. Its data, exec root, socket and pidfile are in a temporary directory; tests reach
it through DOCKER_HOST. At the end of the session dockerd is stopped by its PID (it stops the containerd it
started), the namespace deleted and the directory removed. When dockerd cannot start here (no cgroups, no
storage driver), the tests that need it are skipped with the reason from its log - never faked. (dockerd
also makes, as any dockerd does, an empty /run/docker/plugins and its identity /etc/docker/key.json; both stay,
for the next dockerd.)

The fixtures are named `dockerd` and `docker_image`: conftest.SERVICE_FIXTURES puts every test that uses them
in the `service` tier.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from .blackhole_net import Resources, require_root
from .environment import IN_CI

START_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 30.0
IMAGE = "pcapmtu-test:busybox-curl"
BUSYBOX = Path("/bin/busybox")  # busybox-static: one binary, no libraries
APPLETS = ("sh", "sleep", "cat", "ip", "ping", "ls")


@dataclass(frozen=True)
class Dockerd:
    ns: str  # the network namespace dockerd (and docker0) live in
    host: str  # DOCKER_HOST
    env: dict
    res: Resources

    @property
    def ns_path(self) -> str:
        return f"/run/netns/{self.ns}"

    def docker(self, *args: str, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            ["docker", *args], capture_output=True, text=True, env=self.env, timeout=timeout, check=False
        )
        if check and proc.returncode != 0:
            raise RuntimeError(f"docker {' '.join(args)} failed: {proc.stderr.strip()}")
        return proc


def _missing(*tools: str) -> None:
    absent = [t for t in tools if shutil.which(t) is None]
    if absent:
        reason = f"{', '.join(absent)} not installed (.ci/apt-packages.txt: docker.io)"
        if IN_CI:
            pytest.fail(reason)
        pytest.skip(reason)


def _log_tail(log: Path, lines: int = 3) -> str:
    text = log.read_text(errors="replace").splitlines() if log.exists() else []
    wanted = [ln for ln in text if "level=error" in ln or "level=fatal" in ln or "failed" in ln.lower()]
    return " | ".join((wanted or text)[-lines:]) or "(empty log)"


def _unmount_under(root: Path) -> None:
    """dockerd bind-mounts each container's namespace file under its exec root; unmount what it left."""
    mounts = Path("/proc/self/mountinfo").read_text().splitlines()
    points = [m.split()[4] for m in mounts if m.split()[4].startswith(str(root))]
    for point in sorted(points, key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True, check=False)


@pytest.fixture(scope="session")
def dockerd():
    require_root()
    _missing("dockerd", "docker", "containerd", "runc", "nsenter")
    res = Resources("pmd-")
    base = Path(tempfile.mkdtemp(prefix="pmd-", dir="/tmp"))  # short: unix socket paths have 108 bytes
    rid = res.new_run_id()
    ns = f"pmd-{rid}-docker"
    cgroup = f"pmd-{rid}"  # the containers' cgroups, under a parent of our own that teardown removes
    sock = base / "docker.sock"
    log = base / "dockerd.log"
    proc = None
    try:
        res.add_netns(ns)
        cmd = ["nsenter", f"--net=/run/netns/{ns}", "dockerd", "--data-root", str(base / "data")]
        cmd += [
            "--exec-root",
            str(base / "exec"),
            "--pidfile",
            str(base / "dockerd.pid"),
            "-H",
            f"unix://{sock}",
        ]
        cmd += ["--storage-driver", "vfs", "--bip", "172.17.0.1/16", "--iptables=true", "--ip-forward=true"]
        # cgroupfs, not systemd, where systemd runs: a cgroup parent is then a path, not a slice name
        cmd += ["--exec-opt", "native.cgroupdriver=cgroupfs", "--cgroup-parent", f"/{cgroup}"]
        with log.open("w") as fh:
            proc = res.popen(cmd, stdin=subprocess.DEVNULL, stdout=fh, stderr=fh, start_new_session=True)
        env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()} | {
            "DOCKER_HOST": f"unix://{sock}"
        }
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                pytest.skip(f"dockerd could not start here (exit {proc.returncode}): {_log_tail(log)}")
            if sock.exists():
                ping = subprocess.run(
                    ["docker", "version"], capture_output=True, env=env, timeout=30, check=False
                )
                if ping.returncode == 0:
                    break
            if time.monotonic() > deadline:
                pytest.skip(f"dockerd did not answer in {START_TIMEOUT_S:g} s: {_log_tail(log)}")
            time.sleep(0.25)
        yield Dockerd(ns, f"unix://{sock}", env, res)
    finally:
        if proc is not None and proc.poll() is None:
            ids = subprocess.run(
                ["docker", "ps", "-aq"], capture_output=True, text=True, env=env, timeout=30, check=False
            ).stdout.split()
            if ids:
                subprocess.run(
                    ["docker", "rm", "-f", *ids], capture_output=True, env=env, timeout=60, check=False
                )
            res.stop(proc, signal.SIGTERM, STOP_TIMEOUT_S)
        res.cleanup()
        for path in Path("/sys/fs/cgroup").glob(f"*/{cgroup}"):
            with contextlib.suppress(OSError):
                path.rmdir()  # empty once its containers are gone
        _unmount_under(base)
        shutil.rmtree(base, ignore_errors=True)


def _rootfs(root: Path) -> None:
    """busybox-static and curl (with the shared libraries ldd names): a container that has curl."""
    bin_dir = root / "bin"
    bin_dir.mkdir(parents=True)
    (root / "etc").mkdir()
    (root / "tmp").mkdir()
    shutil.copy2(BUSYBOX, bin_dir / "busybox")
    for applet in APPLETS:
        (bin_dir / applet).symlink_to("busybox")
    curl = shutil.which("curl")
    assert curl, "curl is installed (the capture tests need it)"
    shutil.copy2(curl, bin_dir / "curl")
    ldd = subprocess.run(["ldd", curl], capture_output=True, text=True, check=True).stdout
    for lib in {word for word in ldd.split() if word.startswith("/")}:
        target = root / lib.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(Path(lib).resolve(), target)
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/:/bin/sh\n")


@pytest.fixture(scope="session")
def docker_image(dockerd, tmp_path_factory):
    """The image's name, imported once per session."""
    if not BUSYBOX.exists():
        reason = f"{BUSYBOX} missing (.ci/apt-packages.txt: busybox-static)"
        if IN_CI:
            pytest.fail(reason)
        pytest.skip(reason)
    root = tmp_path_factory.mktemp("rootfs") / "root"
    _rootfs(root)
    tar = subprocess.Popen(["tar", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
    imported = subprocess.run(
        ["docker", "import", "-", IMAGE], stdin=tar.stdout, capture_output=True, text=True, env=dockerd.env,
        timeout=120, check=False,
    )  # fmt: skip
    tar.wait()
    if imported.returncode != 0:
        raise RuntimeError(f"docker import failed: {imported.stderr.strip()}")
    return IMAGE
