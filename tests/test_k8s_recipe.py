"""The Kubernetes capture recipe (`pcapmtu.capture.kubernetes`): every printed line is shell a real shell parses,
uses only variables an earlier line set, gives kubectl only flags kubectl has, and the scripts that run inside
the debug containers capture for real: run here as printed, in network namespaces made and removed by the
test, with a veth named eth0 (the pod's side) and an uplink with a default route (the node's side).

No cluster is reachable here: what kubectl would do with the lines is checked against `kubectl ... --help`
(skipped where kubectl is not installed) and the Kubernetes documentation cited in docs/capturing.md.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import uuid

import pytest

import pcapmtu
from pcapmtu.capture import kubernetes
from pcapmtu.capture.kubernetes import commands, render
from support.environment import require_root_and

RECIPES = {
    "plain": dict(pod="web-7d9c5-abcde", namespace="shop"),
    "container-cri-o-ports": dict(
        pod="api.v2-0", namespace="prod", container="app", runtime="cri-o", ports=(8443,)
    ),
}
DEFINED_BY_THE_RECIPE = {"NS", "POD", "DBG", "NODE", "NODE_POD", "i"}
RUNS_INSIDE = {"UPLINK", "POD_ID", "CID", "PID"}  # set by the scripts the debug containers run


def lines(recipe: str) -> list[str]:
    return [c for step in commands(**RECIPES[recipe]) for c in step.commands if not c.startswith("#")]


def scripts(line: str) -> list[str]:
    """The `sh -c SCRIPT` arguments of a line, as the shell will hand them over."""
    words = shlex.split(line)
    return [words[i + 2] for i, w in enumerate(words[:-2]) if w == "sh" and words[i + 1] == "-c"]


@pytest.mark.parametrize("recipe", RECIPES)
def test_every_line_and_every_inner_script_parses(recipe):
    for line in lines(recipe):
        for sh in ("sh", "bash"):
            run = subprocess.run([sh, "-n", "-c", line], capture_output=True, text=True, timeout=10)
            assert run.returncode == 0, (sh, line, run.stderr)
        for script in scripts(line):
            run = subprocess.run(["sh", "-n", "-c", script], capture_output=True, text=True, timeout=10)
            assert run.returncode == 0, (script, run.stderr)


def _outside_single_quotes(text: str) -> str:
    return re.sub(r"'[^']*'", "''", text)


@pytest.mark.parametrize("recipe", RECIPES)
def test_variables_are_set_before_they_are_used(recipe):
    defined: set[str] = set()
    for line in lines(recipe):
        defined |= set(re.findall(r"(?:^|[\s;(])([A-Z_]+)=", _outside_single_quotes(line)))
        used = set(re.findall(r"\$\{?([A-Za-z_]+)", _outside_single_quotes(line)))
        assert used <= defined | {"i"}, (line, used - defined)
        for script in scripts(line):
            inner = set(re.findall(r"\$\{?([A-Za-z_]+)", script))
            assert inner <= RUNS_INSIDE, (script, inner - RUNS_INSIDE)
    assert defined == DEFINED_BY_THE_RECIPE - {"i"}


def test_the_names_given_are_in_the_lines():
    text = render(commands(**RECIPES["container-cri-o-ports"]))
    assert "NS=prod POD=api.v2-0 " in text and "--target=app" in text and "-c app -- curl" in text
    assert "unix:///var/run/crio/crio.sock" in text and '--name "^api[.]v2-0\\$"' in text
    assert '"port 53 or port 443 or port 80 or icmp or icmp6 or port 8443"' in text
    assert render(commands(**RECIPES["plain"])).count("nicolaka/netshoot") == 3
    assert "--image=example.org/tools/tcpdump:1.2" in render(
        commands("web", image="example.org/tools/tcpdump:1.2")
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(pod="Web"), "not a valid Kubernetes name"),
        (dict(pod="web; rm -rf /"), "not a valid Kubernetes name"),
        (dict(pod="a" * 254), "not a valid Kubernetes name"),
        (dict(pod="web", namespace="a.b"), "not a valid Kubernetes name"),
        (dict(pod="web", container="$(id)"), "not a valid Kubernetes name"),
        (dict(pod="web", image="netshoot' x"), "not an image reference"),
        (dict(pod="web", runtime="docker"), "runtime must be one of"),
        (dict(pod="web", seconds=0), "seconds must be"),
        (dict(pod="web", ports=(70000,)), "ports must be"),
        (dict(pod="web", directory="tmp;x"), "absolute path"),
    ],
)
def test_names_that_would_not_paste_safely_are_refused(kwargs, message):
    with pytest.raises(pcapmtu.UsageError, match=re.escape(message)):
        commands(**kwargs)


def test_render_shows_each_step_then_its_commands_verbatim():
    steps = commands(**RECIPES["plain"])
    text = render(steps)
    assert [ln for ln in text.splitlines() if re.match(r"# \d\. ", ln)] == [
        f"# {n}. {s.title} - on {s.where}" for n, s in enumerate(steps, 1)
    ]
    for step in steps:
        for command in step.commands:
            assert f"\n{command}\n" in text


# -------------------------------------------------------------------------------------- kubectl's own flags
def test_kubectl_lines_use_subcommands_and_flags_kubectl_has():
    if not shutil.which("kubectl"):
        pytest.skip(
            "kubectl not installed (Debian bookworm has no current kubectl package): flags not checked"
        )
    used: dict[str, set[str]] = {}
    for recipe in RECIPES:
        for line in lines(recipe):
            for part in re.split(r"\$\(|&&|;|\|", _outside_single_quotes(line)):
                words = part.split()
                if not words or words[0] != "kubectl":
                    continue
                own = words[2 : words.index("--")] if "--" in words else words[2:]  # after --: the command's
                used.setdefault(words[1], set()).update(w.split("=")[0] for w in own if w.startswith("-"))
    assert set(used) == {"get", "debug", "logs", "exec", "cp", "delete"}, used
    general = subprocess.run(["kubectl", "options"], capture_output=True, text=True, timeout=30).stdout
    for sub, flags in used.items():
        text = subprocess.run(["kubectl", sub, "--help"], capture_output=True, text=True, timeout=30).stdout
        for flag in flags:
            assert re.search(rf"(^|[\s,]){re.escape(flag)}[=,\s]", text + general, re.M), (sub, flag)
    debug = subprocess.run(["kubectl", "debug", "--help"], capture_output=True, text=True, timeout=30).stdout
    for profile in ("netadmin", "sysadmin"):
        assert f'"{profile}"' in debug, f"kubectl debug has no --profile={profile}"
    assert (
        "node/" in debug
    )  # kubectl debug node/NODE: a pod in the node's namespaces, its filesystem at /host


# -------------------------------------------------------------------------- the scripts, run for real
TOOLS = ("ip", "tcpdump", "timeout", "ping")


def _need() -> None:
    require_root_and(TOOLS)


def _ns(name: str, command: str) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", "netns", "exec", name, "sh", "-c", command], capture_output=True, text=True,
                          timeout=30, check=True)  # fmt: skip


@pytest.fixture
def pod_and_node():
    """A 'pod' namespace with eth0 (10.66.0.50) and a 'node' namespace whose uplink holds the default route."""
    _need()
    tag = uuid.uuid4().hex[:6]
    pod, node = f"pmtk8s-{tag}-pod", f"pmtk8s-{tag}-node"
    made = []
    try:
        for name in (pod, node):
            subprocess.run(["ip", "netns", "add", name], check=True)
            made.append(name)
        subprocess.run(["ip", "link", "add", f"p{tag}", "netns", pod, "type", "veth", "peer", "name", f"u{tag}",
                        "netns", node], check=True)  # fmt: skip
        _ns(pod, f"ip link set p{tag} name eth0 && ip addr add 10.66.0.50/24 dev eth0 && ip link set eth0 up "
                 "&& ip link set lo up")  # fmt: skip
        _ns(node, f"ip addr add 10.66.0.1/24 dev u{tag} && ip link set u{tag} up && ip link set lo up "
                  "&& ip route add default via 10.66.0.50")  # fmt: skip
        yield {"pod": pod, "node": node, "uplink": f"u{tag}"}
    finally:
        for name in made:
            subprocess.run(["ip", "netns", "del", name], check=False)


def _run_script(netns: str, script: str, log):
    """Start a debug container's script in `netns`, in a session of its own (ended by its id afterwards)."""
    return subprocess.Popen(["ip", "netns", "exec", netns, "sh", "-c", script], stdout=log, stderr=log,
                            start_new_session=True)  # fmt: skip


def _wait_for(path, text: str, count: int = 1, seconds: float = 15) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().count(text) >= count:
            return
        time.sleep(0.1)
    raise AssertionError(f"{text!r} not in {path}: {path.read_text() if path.exists() else ''}")


def _stop_command(step, pid_file: str) -> str:
    """The inner script of the recipe's stop line for `pid_file` (what kubectl exec runs in the container)."""
    line = next(c for c in step.commands if "kill -INT" in c and pid_file in c)
    (script,) = scripts(line)
    return script


@pytest.mark.parametrize("side", ["pod", "node"])
def test_the_capture_scripts_capture_and_stop_as_printed(pod_and_node, tmp_path, side):
    """The pod's script (on eth0) and the node's (on the interface of the default route, with the tunnel filter)
    run as printed: they print the MTUs, tcpdump starts, traffic is written, and the printed stop line ends
    tcpdump cleanly ('packets captured') while the container would stay up for kubectl cp."""
    steps = commands("web", "shop", directory=str(tmp_path), seconds=60)
    capture = steps[1] if side == "pod" else steps[2]
    (script,) = scripts(capture.commands[0])
    netns = pod_and_node[side]
    log_path = tmp_path / f"{side}.log"
    with log_path.open("w") as log:
        proc = _run_script(netns, script, log)
    try:
        _wait_for(log_path, "listening on")
        text = log_path.read_text()
        assert "mtu 1500" in text  # ip -o link: the MTUs written down
        if side == "node":
            assert (
                f"uplink: {pod_and_node['uplink']}" in text
                and f"listening on {pod_and_node['uplink']}" in text
            )
        peer = "10.66.0.1" if side == "pod" else "10.66.0.50"
        subprocess.run(["ip", "netns", "exec", netns, "ping", "-c", "3", "-i", "0.2", "-W", "1", peer],
                       capture_output=True, timeout=30, check=True)  # fmt: skip
        subprocess.run(["ip", "netns", "exec", netns, "sh", "-c",
                        f"exec 3<>/dev/tcp/{peer}/80 2>/dev/null; true"], capture_output=True, timeout=10)  # fmt: skip
        pid_file = f"{tmp_path}/{side}-capture.pid"
        stop = _stop_command(steps[4], pid_file)
        subprocess.run(["ip", "netns", "exec", netns, "sh", "-c", stop], check=True, timeout=10)
        _wait_for(log_path, "packets captured")
        assert proc.poll() is None  # still alive (sleep): kubectl cp could copy the file now
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    cap = pcapmtu.read(tmp_path / f"{side}.pcap")
    echo = cap.packets[(cap.packets["proto"] == 1) & (cap.packets["icmp_type"].isin([0, 8]))]
    assert len(echo) == 6, cap.packets[["src", "dst", "proto", "icmp_type"]]  # 3 requests, 3 replies
    assert "0 packets dropped by kernel" in log_path.read_text()


def test_overlay_filter_compiles_in_tcpdump():
    """The node filter with the tunnels' ports and protocols is one tcpdump accepts (-d compiles, captures none)."""
    _need()
    expr = f"{kubernetes.FILTER} or {kubernetes.TUNNELS}"
    run = subprocess.run(["tcpdump", "-d", "-i", "lo", expr], capture_output=True, text=True, timeout=10)
    assert run.returncode == 0, run.stderr


def test_docs_show_the_recipe_as_the_function_returns_it():
    """docs/capturing.md's Kubernetes block is what commands() returns for its example pod, byte for byte."""
    from pathlib import Path

    page = (Path(__file__).resolve().parents[1] / "docs" / "capturing.md").read_text()
    assert f"```sh\n{render(commands('web-7d9c5-abcde', 'shop')).rstrip()}\n```" in page


def test_the_command_line_prints_the_recipe_and_runs_nothing():
    """`pcapmtu capture --print-k8s POD -n NS` prints exactly render(commands(...)), as any user, exit 0; a name
    that would not paste safely is one line and exit 2."""
    args = ["--print-k8s", "web-7d9c5-abcde", "-n", "shop", "--container", "app", "--runtime", "cri-o"]
    done = subprocess.run(
        [sys.executable, "-m", "pcapmtu", "capture", *args], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    expected = render(commands("web-7d9c5-abcde", "shop", container="app", runtime="cri-o"))
    assert done.stdout == expected + "\n"
    assert "--target=app" in done.stdout and "crio.sock" in done.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "pcapmtu", "capture", "--print-k8s", "web;rm -rf /"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and bad.stdout == ""
    assert len(bad.stderr.strip().splitlines()) == 1 and "not a valid Kubernetes name" in bad.stderr
