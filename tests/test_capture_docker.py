"""The incident end to end with Docker itself: a real dockerd (tests/support/dockerd.py) on a host whose uplink
has MTU 1450 behind a router that drops ICMP, a real container on docker0, and `pcapmtu capture --container
... --reproduce ...` turning it into the verdict, the path MTU and the fix, with the MTUs it recorded. Also: a
container that does not exist is one line and exit 2. The `service` tier (fixture `dockerd`)."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys

import pytest

from support import blackhole_net
from support.blackhole_net import CONTAINER_MTU, PATH_MTU, SERVER_IP, UPLINK

PCAPMTU = [sys.executable, "-m", "pcapmtu"]


@pytest.fixture
def incident(dockerd, docker_image, tmp_path):
    """The black hole around dockerd's namespace, and a running container on the default bridge."""
    net = blackhole_net.build(dockerd.res, tmp_path, host=dockerd.ns, container=False)
    name = f"pcapmtu-e2e-{secrets.token_hex(3)}"
    dockerd.docker("run", "-d", "--name", name, docker_image, "/bin/sleep", "600")
    try:
        pid = dockerd.docker("inspect", "-f", "{{.State.Pid}}", name).stdout.strip()
        ns_path = f"/proc/{pid}/ns/net"
        net.offloads_off(ns_path, "eth0")
        blackhole_net.wait_reachable(dockerd.res, ns_path)
        yield net, name
    finally:
        dockerd.docker("rm", "-f", name, check=False)
        net.remove()


def test_capture_container_turns_the_real_incident_into_the_verdict(dockerd, incident, tmp_path):
    net, name = incident
    out = tmp_path / "cap"
    cmd = ["nsenter", f"--net={dockerd.ns_path}", *PCAPMTU, "capture", "--container", name]
    cmd += ["--reproduce", net.url, "--reproduce-timeout", "8", "--out", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, env=dockerd.env, timeout=180, check=False)
    said = f"exit {done.returncode}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    assert done.returncode == 1, said
    report = json.loads((out / "report.json").read_text())
    assert report["verdict"] == "mtu_blackhole", said
    assert report["path_mtu"] == PATH_MTU, said
    assert report["fix"]["mss"] == PATH_MTU - 40, said
    assert f"--set-mss {PATH_MTU - 40}" in done.stdout, said

    meta = json.loads((out / "pcapmtu-capture.json").read_text())
    assert meta["namespace"]["kind"] == "container" and meta["namespace"]["name"] == name
    assert meta["mtus"] == {"container": CONTAINER_MTU, "host": PATH_MTU}
    roles = {i["role"]: i for i in meta["interfaces"]}
    assert set(roles) == {"container", "veth", "bridge", "uplink"}, meta["interfaces"]
    assert roles["container"]["name"] == "eth0" and roles["container"]["mtu"] == CONTAINER_MTU
    assert roles["veth"]["name"].startswith("veth") and roles["veth"]["mtu"] == CONTAINER_MTU
    assert roles["bridge"]["name"] == "docker0" and roles["bridge"]["mtu"] == CONTAINER_MTU
    assert roles["uplink"]["name"] == UPLINK and roles["uplink"]["mtu"] == PATH_MTU
    assert meta["reproduce"]["runner"] == "docker exec", meta["reproduce"]  # the image has curl
    assert meta["reproduce"]["exit_code"] == 28, meta["reproduce"]  # the download hung
    assert meta["ping"]["target"] == SERVER_IP
    assert meta["ping"]["largest_ok_ip"] == PATH_MTU, meta["ping"]
    assert f"MTUs host uplink {PATH_MTU}, container {CONTAINER_MTU}" in done.stderr, said
    # dockerd's own NAT is in the host namespace; no clamp rule exists there, and none was recorded
    assert meta["clamps"] == [] and meta["clamps_unread"] == [], meta


def test_a_container_without_curl_is_reproduced_with_the_hosts_curl_in_its_namespace(
    dockerd, incident, tmp_path
):
    net, name = incident
    dockerd.docker("exec", name, "/bin/busybox", "rm", "/bin/curl")
    out = tmp_path / "cap"
    cmd = ["nsenter", f"--net={dockerd.ns_path}", *PCAPMTU, "capture", "--container", name]
    cmd += ["--reproduce", net.url, "--reproduce-timeout", "6", "--out", str(out), "--quiet"]
    done = subprocess.run(cmd, capture_output=True, text=True, env=dockerd.env, timeout=180, check=False)
    assert done.returncode == 1 and done.stdout == "" and done.stderr == "", done
    meta = json.loads((out / "pcapmtu-capture.json").read_text())
    assert meta["reproduce"]["runner"] == "nsenter (host curl)", meta["reproduce"]
    assert meta["reproduce"]["command"][:2] == ["nsenter", f"--net=/proc/{meta['namespace']['pid']}/ns/net"]
    assert json.loads((out / "report.json").read_text())["path_mtu"] == PATH_MTU


def test_a_missing_container_is_one_line_and_exit_2(dockerd, tmp_path):
    cmd = ["nsenter", f"--net={dockerd.ns_path}", *PCAPMTU, "capture", "--container", "no-such-box"]
    cmd += ["--out", str(tmp_path / "cap")]
    done = subprocess.run(cmd, capture_output=True, text=True, env=dockerd.env, timeout=60, check=False)
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines() == [
        "pcapmtu: no such container: no-such-box (docker ps lists the running ones)"
    ]
    assert not (tmp_path / "cap").exists()


def test_a_stopped_container_is_one_line_and_exit_2(dockerd, docker_image, tmp_path):
    name = f"pcapmtu-stopped-{secrets.token_hex(3)}"
    dockerd.docker("create", "--name", name, docker_image, "/bin/sleep", "1")
    try:
        cmd = ["nsenter", f"--net={dockerd.ns_path}", *PCAPMTU, "capture", "--container", name]
        done = subprocess.run(
            [*cmd, "--out", str(tmp_path / "cap")],
            capture_output=True,
            text=True,
            env=dockerd.env,
            timeout=60,
        )
        assert done.returncode == 2, done.stderr
        assert done.stderr.splitlines() == [
            f"pcapmtu: container {name} is not running: start it first (docker start {name})"
        ]
    finally:
        dockerd.docker("rm", "-f", name, check=False)
