"""`pcapmtu capture --netns` on a real MTU black hole in network namespaces (tests/support/blackhole_net.py), with
real tcpdump, curl and ping: the verdict and the MTUs it records, and that Ctrl-C, SIGTERM, a tcpdump that cannot
start, no root and a missing namespace each end in one line, exit 2 and no tcpdump left running. Root only
(CI runs as root); the lab tier (module name)."""

from __future__ import annotations

import json
import os
import re
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from support import blackhole_net
from support.blackhole_net import CONTAINER_MTU, PATH_MTU, SERVER_IP, SERVER_IP6, UPLINK, Resources
from support.environment import require_tool

PCAPMTU = [sys.executable, "-m", "pcapmtu"]
READY = re.compile(r"tcpdump PIDs container (\d+), host (\d+)")


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    blackhole_net.require_root()
    for tool in ("tcpdump", "nsenter", "ip", "iptables", "curl", "ping", "ethtool"):
        require_tool(tool)
    res = Resources("pmc-")
    try:
        built = blackhole_net.build(res, tmp_path_factory.mktemp("blackhole"), ipv6=True)
        blackhole_net.wait_reachable(res, built.ns_path(built.container))
        blackhole_net.wait_reachable(res, built.ns_path(built.container), SERVER_IP6)
        yield built
    finally:
        res.cleanup()


def capture(net, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """`pcapmtu capture` run in the host namespace, as on a docker host."""
    cmd = net.in_host([*PCAPMTU, "capture", *args])
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)


def tcpdumps_writing_into(directory: Path) -> list[int]:
    """PIDs of every tcpdump whose command line names `directory` (ours, whoever started them)."""
    return processes("tcpdump", str(directory))


def processes(program: str, word: str) -> list[int]:
    """PIDs of every `program` whose command line holds `word`."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            args = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if (
            args
            and Path(args[0].decode(errors="replace")).name == program
            and word.encode() in b" ".join(args)
        ):
            found.append(int(proc.name))
    return found


def shb_comments(path: Path) -> list[str]:
    """The section header's opt_comment values of a little-endian pcapng file."""
    data = path.read_bytes()
    block_type, length, magic = struct.unpack_from("<III", data, 0)
    assert block_type == 0x0A0D0D0A and magic == 0x1A2B3C4D
    comments, pos = [], 24
    while pos < length - 4:
        code, size = struct.unpack_from("<HH", data, pos)
        if code == 0:
            break
        if code == 1:
            comments.append(data[pos + 4 : pos + 4 + size].decode())
        pos += 4 + size + (-size % 4)
    return comments


def test_the_blackhole_is_captured_and_diagnosed_with_the_recorded_mtus(net, tmp_path):
    out = tmp_path / "cap"
    done = capture(
        net, "--netns", net.container, "--reproduce", net.url, "--reproduce-timeout", "8", "--out", str(out)
    )
    said = f"exit {done.returncode}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    assert done.returncode == 1, said  # an MTU problem
    assert "verdict: mtu_blackhole" in done.stdout, said
    report = json.loads((out / "report.json").read_text())
    assert report["verdict"] == "mtu_blackhole", said
    assert report["path_mtu"] == PATH_MTU, said
    assert f"MSS to {PATH_MTU - 40}" in report["fix"]["summary"], said

    meta = json.loads((out / "pcapmtu-capture.json").read_text())
    assert meta["mtus"] == {"container": CONTAINER_MTU, "host": PATH_MTU}
    ifaces = {i["role"]: (i["name"], i["mtu"]) for i in meta["interfaces"]}
    assert ifaces == {
        "container": ("eth0", CONTAINER_MTU),
        "veth": ("vethpmc0", CONTAINER_MTU),
        "bridge": ("docker0", CONTAINER_MTU),
        "uplink": (UPLINK, PATH_MTU),
    }
    assert meta["clamps"] == []  # the host of this incident has none
    assert meta["stopped_by"] == "reproduce"
    assert meta["reproduce"]["runner"] == "nsenter (host curl)"
    assert meta["reproduce"]["exit_code"] == 28, meta["reproduce"]  # curl timed out: the download hung
    ping = meta["ping"]
    assert ping["target"] == SERVER_IP and ping["answered"]
    assert ping["largest_ok_ip"] == PATH_MTU and ping["smallest_lost_ip"] == PATH_MTU + 1, ping
    # the docker host's own "fragmentation needed" for the pings was cached in the container, and flushed
    assert (
        ping["cached_mtu_before"] is None and ping["cached_mtu_after"] == PATH_MTU and ping["cache_flushed"]
    )
    route = subprocess.run(
        ["ip", "-n", net.container, "-json", "route", "get", SERVER_IP],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "metrics" not in route.stdout, route.stdout
    assert "from the capture metadata" in done.stderr and f"host uplink {PATH_MTU}" in done.stderr, said

    import pcapmtu

    for role in ("container", "host"):
        path = out / f"{role}.pcapng"
        assert path.stat().st_mode & 0o777 == 0o600
        cap = pcapmtu.read(path)
        assert (
            len(cap.packets)
            == meta["captures"][role]["packets"]
            == meta["captures"][role]["tcpdump_captured"]
        )
        assert meta["captures"][role]["tcpdump_dropped"] == 0
        summary, document = shb_comments(path)
        assert f"uplink {UPLINK} MTU {PATH_MTU}" in summary
        assert json.loads(document) == meta  # the same document, inside the capture
    assert not list(out.glob("*.pcap")) and not list(out.glob("*.log"))  # the raw files are gone

    # analyze on its own finds the metadata beside the captures; an MTU given on the command line wins
    cmd = [*PCAPMTU, "analyze", str(out / "host.pcapng"), str(out / "container.pcapng"), "--json"]
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert again.returncode == 1 and json.loads(again.stdout)["path_mtu"] == PATH_MTU, again.stderr
    assert f"MTUs host uplink {PATH_MTU}, container {CONTAINER_MTU}" in again.stderr
    given = subprocess.run(
        [*cmd, "--host-mtu", "1400"], capture_output=True, text=True, timeout=120, check=False
    )
    assert "host uplink" not in given.stderr and f"container {CONTAINER_MTU}" in given.stderr, given.stderr


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_an_interruption_stops_both_tcpdumps_and_keeps_what_they_took(net, tmp_path, sig):
    out = tmp_path / "cap"
    cmd = net.in_host([*PCAPMTU, "capture", "--netns", net.container, "--duration", "60", "--out", str(out)])
    log = tmp_path / "stderr"
    with log.open("w") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while not READY.search(log.read_text()) and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
        match = READY.search(log.read_text())
        assert match, log.read_text()
        pids = [int(p) for p in match.groups()]
        subprocess.run(
            ["nsenter", f"--net={net.ns_path(net.container)}", "ping", "-c", "2", "-i", "0.2", SERVER_IP],
            capture_output=True,
            check=False,
        )
        # a terminal's Ctrl-C reaches the whole foreground group; SIGTERM (kill, systemd) only pcapmtu
        if sig == signal.SIGINT:
            os.killpg(proc.pid, sig)
        else:
            proc.send_signal(sig)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    lines = log.read_text().splitlines()
    assert proc.returncode == 2, lines
    assert lines[-1].startswith("pcapmtu: interrupted: both captures stopped"), lines
    assert sum("interrupted" in ln for ln in lines) == 1, lines
    for pid in pids:
        assert (
            not Path(f"/proc/{pid}").exists() or b"tcpdump" not in Path(f"/proc/{pid}/cmdline").read_bytes()
        )
    assert tcpdumps_writing_into(out) == []
    meta = json.loads((out / "pcapmtu-capture.json").read_text())
    assert meta["stopped_by"] == "interrupt"
    # what was captured is kept: the pings sent before the interruption (at least one request and its reply)
    assert meta["captures"]["container"]["packets"] >= 2, meta["captures"]
    assert not (out / "report.json").exists()  # interrupted: not analysed


def test_a_tcpdump_that_cannot_start_is_one_line_with_its_message(net, tmp_path):
    out = tmp_path / "cap"
    done = capture(
        net, "--netns", net.container, "--host-iface", "nosuch0", "--duration", "5", "--out", str(out)
    )
    lines = done.stderr.splitlines()
    assert done.returncode == 2, done.stderr
    assert lines == [
        "pcapmtu: tcpdump on the host (nosuch0) did not start: tcpdump: nosuch0: No such device exists"
    ]
    assert tcpdumps_writing_into(out) == []  # the container's tcpdump, which did start, is stopped too
    assert not out.exists()  # nothing captured, nothing left behind


def test_an_interface_the_container_lacks_is_one_line(net, tmp_path):
    done = capture(
        net, "--netns", net.container, "--iface", "eth7", "--duration", "5", "--out", str(tmp_path / "c")
    )
    assert done.returncode == 2 and len(done.stderr.splitlines()) == 1, done.stderr
    assert "tcpdump on the container (eth7) did not start" in done.stderr


def test_without_root_it_says_so_in_one_line(net, tmp_path):
    require_tool("setpriv")
    nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    # a checkout (and its .venv) below a directory only root may enter, as a `mktemp -d` clone is, cannot
    # start for another user at all: that says nothing about pcapmtu's own check, so it is no test of it
    probe = subprocess.run(
        [*nobody, *PCAPMTU, "--version"], capture_output=True, text=True, timeout=60, cwd="/"
    )
    if probe.returncode != 0:
        pytest.skip(f"uid 65534 cannot start this checkout's pcapmtu: {probe.stderr.strip()[-200:]}")
    out = tmp_path / "cap"
    cmd = [*nobody, *PCAPMTU]
    cmd += ["capture", "--netns", net.container, "--out", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False, cwd="/")
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines() == [
        "pcapmtu: pcapmtu capture needs root (tcpdump and nsenter): run it with sudo"
    ]
    assert not out.exists()


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--netns", "pmc-no-such-ns"], "no such network namespace: pmc-no-such-ns"),
        (["--pid", "4194305"], "no process 4194305"),  # above the kernel's largest PID
    ],
    ids=["netns", "pid"],
)
def test_a_missing_namespace_is_one_line(net, tmp_path, args, words):
    done = capture(net, *args, "--out", str(tmp_path / "cap"))
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.splitlines()) == 1 and words in done.stderr, done.stderr


def test_the_host_namespace_itself_is_refused(net, tmp_path):
    done = capture(net, "--netns", net.host, "--out", str(tmp_path / "cap"))
    assert done.returncode == 2 and "host's own network namespace" in done.stderr, done.stderr
    assert len(done.stderr.splitlines()) == 1, done.stderr


def test_a_duration_shorter_than_the_reproduction_ends_it_too(net, tmp_path):
    """The captures stop at --duration; the request still running is ended, not left behind, and said."""
    out = tmp_path / "cap"
    url = net.url + "&slow"
    done = capture(net, "--netns", net.container, "--reproduce", url, "--duration", "3", "--out", str(out))
    meta = json.loads((out / "pcapmtu-capture.json").read_text())
    assert meta["stopped_by"] == "duration", done.stderr
    assert meta["reproduce_error"] == "the captures stopped before the reproduction was done"
    assert processes("curl", url) == []
    # what was captured is analysed (its verdict is the analysis's business: 3 s of a hung download)
    assert done.returncode in (0, 1, 3) and (out / "report.json").exists(), done.stderr


def test_the_size_cap_stops_both_captures(net, tmp_path):
    out = tmp_path / "cap"
    args = ["--netns", net.container, "--reproduce", net.url, "--reproduce-timeout", "3", "--max-size", "4K"]
    done = capture(net, *args, "--out", str(out), "--no-analyze")
    assert done.returncode == 0, done.stderr
    assert "a capture reached --max-size (4096 bytes): both stopped" in done.stderr
    meta = json.loads((out / "pcapmtu-capture.json").read_text())
    assert meta["stopped_by"] == "max-size"
    raw = max(meta["captures"][role]["packets"] for role in ("container", "host"))
    assert raw > 0 and not (out / "report.json").exists()  # --no-analyze
    assert tcpdumps_writing_into(out) == []


def test_pcapmtu_killed_outright_leaves_no_tcpdump(net, tmp_path):
    """SIGKILL cannot be caught: the parent-death signal makes the kernel stop each tcpdump (SIGINT)."""
    out = tmp_path / "cap"
    cmd = net.in_host([*PCAPMTU, "capture", "--netns", net.container, "--duration", "60", "--out", str(out)])
    log = tmp_path / "stderr"
    with log.open("w") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while not READY.search(log.read_text()) and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
        assert READY.search(log.read_text()), log.read_text()
        assert len(tcpdumps_writing_into(out)) == 2
        proc.kill()
        proc.wait(10)
        deadline = time.monotonic() + 10
        while tcpdumps_writing_into(out) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert tcpdumps_writing_into(out) == []
        # SIGINT: each wrote what it had and closed its file (tcpdump's own statistics in its log)
        for role in ("container", "host"):
            assert re.search(r"^\d+ packets? captured$", (out / f"{role}.tcpdump.log").read_text(), re.M)
    finally:
        if proc.poll() is None:
            proc.kill()


def test_the_ipv6_blackhole_is_captured_and_bisected_with_ipv6_headers(net, tmp_path):
    out = tmp_path / "cap"
    url = f"http://[{SERVER_IP6}]/big?bytes=300000"
    done = capture(
        net, "--netns", net.container, "--reproduce", url, "--reproduce-timeout", "8", "--out", str(out)
    )
    said = f"exit {done.returncode}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    assert done.returncode == 1, said
    report = json.loads((out / "report.json").read_text())
    assert report["verdict"] == "mtu_blackhole" and report["path_mtu"] == PATH_MTU, said
    assert report["recommended_mss"] == PATH_MTU - 60, said  # IPv6: 40 + 20 bytes of headers
    meta = json.loads((out / "pcapmtu-capture.json").read_text())
    ping = meta["ping"]
    assert ping["target"] == SERVER_IP6 and ping["headers"] == 48, ping
    assert ping["largest_ok_ip"] == PATH_MTU and ping["smallest_lost_ip"] == PATH_MTU + 1, ping
    assert ping["cache_flushed"] or ping["cached_mtu_after"] is None, ping
    route = subprocess.run(
        ["ip", "-n", net.container, "-json", "-6", "route", "get", SERVER_IP6], capture_output=True, text=True
    )
    assert '"mtu"' not in route.stdout, route.stdout  # nothing the pings taught the container stays


def test_a_clamp_rule_on_the_host_is_recorded_once_and_reaches_the_fix(net, tmp_path):
    """A clamp that matches nothing the container sends (wrong interface): recorded, and the fix says so."""
    rule = "FORWARD -o eth9 -p tcp --tcp-flags SYN,RST SYN -j TCPMSS --set-mss 1460"
    subprocess.run(
        ["ip", "netns", "exec", net.host, "iptables", "-t", "mangle", "-A", *rule.split()], check=True
    )
    try:
        out = tmp_path / "cap"
        args = ["--netns", net.container, "--reproduce", net.url, "--reproduce-timeout", "5"]
        done = capture(net, *args, "--out", str(out))
    finally:
        subprocess.run(
            ["ip", "netns", "exec", net.host, "iptables", "-t", "mangle", "-D", *rule.split()], check=True
        )
    assert done.returncode == 1, done.stderr
    meta = json.loads((out / "pcapmtu-capture.json").read_text())
    assert [(c["source"], c["mss"], c["to_pmtu"]) for c in meta["clamps"]] == [("iptables-save", 1460, False)]
    assert "1 MSS clamp rule(s) on the host" in done.stderr
    notes = " ".join(json.loads((out / "report.json").read_text())["fix"]["notes"])
    assert "--set-mss 1460" in notes and "do not match the failing traffic" in notes, notes
