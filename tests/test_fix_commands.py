"""The fix commands pcapmtu prints do what they say: pasted into a router's shell, the SYN leaves with the MSS.

An engineer pastes these lines into a root shell on a production host, so each one is run here as printed, in a
network namespace that forwards between a client and a server namespace (the docker host's place), and the SYN
the server receives is read back with pcapmtu. IPv4 and IPv6 each get their own MSS; nftables gets the table
and chain it needs. Needs root, iproute2, iptables, ip6tables, nft and tcpdump (CI has them; elsewhere it
skips and says why). Addresses: 172.17.0.0/16 and 198.18.0.0/15, fd00::/8, in namespaces made and removed here.
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from pathlib import Path

import pytest

import pcapmtu
from support.environment import SAMPLES, require_root_and

TOOLS = ("ip", "iptables", "ip6tables", "nft", "tcpdump")
PATH_MTU = 1450  # the lab black hole's path; the commands come from pcapmtu's analysis of it
CLIENT4, ROUTER4_IN, ROUTER4_OUT, SERVER4 = "172.17.77.2", "172.17.77.1", "198.18.77.1", "198.18.77.2"
CLIENT6, ROUTER6_IN, ROUTER6_OUT, SERVER6 = "fd00:77:1::2", "fd00:77:1::1", "fd00:77:2::1", "fd00:77:2::2"
PORT = 8443


def _need() -> None:
    require_root_and(TOOLS)


def sh(ns: str, command: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", "netns", "exec", ns, "sh", "-c", command], capture_output=True, text=True,
                          timeout=30, check=check)  # fmt: skip


@pytest.fixture(scope="module")
def fix():
    """pcapmtu's fix for the IPv6 black hole (it lists both families), and for the IPv4 one."""
    v6 = pcapmtu.analyze(
        host=SAMPLES / "ipv6_blackhole/host.pcap", container=SAMPLES / "ipv6_blackhole/container.pcap"
    )
    v4 = pcapmtu.analyze(
        host=SAMPLES / "blackhole_tls12/host.pcap", container=SAMPLES / "blackhole_tls12/container.pcap"
    )
    assert v4.path_mtu == v6.path_mtu == PATH_MTU
    return {4: v4.fix, 6: v6.fix}


@pytest.fixture(scope="module")
def net():
    """client -- router -- server namespaces; the router forwards (IPv4 and IPv6) and is where fixes go."""
    _need()
    tag = uuid.uuid4().hex[:6]
    ns = {role: f"pmtfix-{tag}-{role}" for role in ("client", "router", "server")}
    made: list[str] = []
    try:
        for name in ns.values():
            subprocess.run(["ip", "netns", "add", name], check=True)
            made.append(name)
        for left, right, a, b in (("client", "router", "c0", "r0"), ("router", "server", "r1", "s0")):
            subprocess.run(["ip", "link", "add", f"{a}{tag}", "netns", ns[left], "type", "veth", "peer", "name",
                            f"{b}{tag}", "netns", ns[right]], check=True)  # fmt: skip
        c0, r0, r1, s0 = (f"{x}{tag}" for x in ("c0", "r0", "r1", "s0"))
        for name, dev, addrs in ((ns["client"], c0, (f"{CLIENT4}/24", f"{CLIENT6}/64")),
                                 (ns["router"], r0, (f"{ROUTER4_IN}/24", f"{ROUTER6_IN}/64")),
                                 (ns["router"], r1, (f"{ROUTER4_OUT}/24", f"{ROUTER6_OUT}/64")),
                                 (ns["server"], s0, (f"{SERVER4}/24", f"{SERVER6}/64"))):  # fmt: skip
            sh(name, f"ip link set lo up && ip link set {dev} up")
            for addr in addrs:
                sh(name, f"ip addr add {addr} dev {dev} nodad")
        sh(ns["router"], "sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1")
        sh(ns["client"], f"ip route add default via {ROUTER4_IN} && ip -6 route add default via {ROUTER6_IN}")
        sh(
            ns["server"],
            f"ip route add default via {ROUTER4_OUT} && ip -6 route add default via {ROUTER6_OUT}",
        )
        yield ns | {"server_dev": s0, "router_out": r1}
    finally:
        for name in made:
            subprocess.run(["ip", "netns", "del", name], check=False)


def syn_mss(net: dict, family: int, tmp: Path) -> int:
    """Connect client -> server once and return the MSS of the SYN as it reached the server."""
    pcap = tmp / f"syn{family}-{time.monotonic_ns()}.pcap"
    log = pcap.with_suffix(".log")
    wanted = (
        f"tcp dst port {PORT} and tcp[tcpflags] & tcp-syn != 0"
        if family == 4
        else f"ip6 and tcp dst port {PORT}"
    )
    with log.open("w") as err:
        dump = subprocess.Popen(["ip", "netns", "exec", net["server"], "tcpdump", "-i", net["server_dev"], "-U",
                                 "--immediate-mode", "-n", "-Z", "root", "-w", str(pcap), "-c", "1", wanted],
                                stdout=subprocess.DEVNULL, stderr=err)  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and "listening" not in log.read_text():
            time.sleep(0.05)
        server = SERVER4 if family == 4 else SERVER6
        # nothing listens: the SYN is answered by RST, which is all this needs
        sh(net["client"], f"python3 -c \"import socket; s=socket.socket(socket.AF_INET{'6' if family == 6 else ''}); "
                          f"s.settimeout(2); s.connect_ex(('{server}', {PORT}))\"", check=False)  # fmt: skip
        dump.wait(timeout=10)
    finally:
        if dump.poll() is None:
            dump.kill()
            dump.wait()
    flows = pcapmtu.read(pcap).flows
    assert len(flows) == 1, flows
    return int(flows["mss_client"].iloc[0])


def router(net: dict, commands: list[str]) -> None:
    """A clean router, then the commands exactly as pcapmtu prints them."""
    sh(net["router"], "iptables -t mangle -F && ip6tables -t mangle -F && nft flush ruleset")
    for command in commands:
        run = sh(net["router"], command, check=False)
        assert run.returncode == 0, f"{command!r} failed: {run.stderr.strip()}"


def _command(fix, starts: str) -> str:
    found = [c["command"] for c in fix.commands if c["command"].startswith(starts)]
    assert found, [c["command"] for c in fix.commands]
    return found[0]


def test_without_a_fix_the_syn_keeps_the_clients_mss(net, tmp_path):
    router(net, [])
    assert syn_mss(net, 4, tmp_path) == 1460 and syn_mss(net, 6, tmp_path) == 1440


def test_recommended_command_first_for_the_failing_family(fix):
    assert (
        fix[4].commands[0]["command"].startswith("iptables ")
        and "--set-mss 1410" in fix[4].commands[0]["command"]
    )
    assert (
        fix[6].commands[0]["command"].startswith("ip6tables ")
        and "--set-mss 1390" in fix[6].commands[0]["command"]
    )
    assert not any(c["command"].lstrip().startswith("{") for f in fix.values() for c in f.commands)


@pytest.mark.parametrize("family", [4, 6])
def test_iptables_set_mss_per_family(net, fix, family, tmp_path):
    router(net, [_command(fix[family], "iptables "), _command(fix[family], "ip6tables ")])
    assert syn_mss(net, 4, tmp_path) == PATH_MTU - 40
    assert syn_mss(net, 6, tmp_path) == PATH_MTU - 60


def test_nftables_table_chain_and_rules_as_printed(net, fix, tmp_path):
    nft = [c["command"] for c in fix[6].commands if c["command"].startswith("nft ")]
    assert len(nft) == 2, nft
    router(net, nft)
    assert syn_mss(net, 4, tmp_path) == PATH_MTU - 40
    assert syn_mss(net, 6, tmp_path) == PATH_MTU - 60


def test_clamp_to_the_route_mtu(net, fix, tmp_path):
    """--clamp-mss-to-pmtu follows the MTU of the route out: right when that link is the narrow hop."""
    clamp = [c["command"] for c in fix[4].commands if "--clamp-mss-to-pmtu" in c["command"]]
    assert clamp and clamp[0].startswith("iptables ")
    sh(net["router"], f"ip link set {net['router_out']} mtu {PATH_MTU}")
    try:
        router(net, clamp)
        assert syn_mss(net, 4, tmp_path) == PATH_MTU - 40
    finally:
        sh(net["router"], f"ip link set {net['router_out']} mtu 1500")


@pytest.fixture(scope="module")
def k8s_fix():
    """The same incident's fix spoken for Kubernetes: the idempotent clamp and the clamp DaemonSet."""
    a = pcapmtu.analyze(
        host=SAMPLES / "blackhole_tls12/host.pcap",
        container=SAMPLES / "blackhole_tls12/container.pcap",
        platform="kubernetes",
    )
    return a.fix


def _mangle_rules(net: dict) -> list[str]:
    rules = sh(
        net["router"], "iptables -t mangle -S FORWARD; ip6tables -t mangle -S FORWARD"
    ).stdout.splitlines()
    return [r for r in rules if "TCPMSS" in r]


def test_idempotent_clamp_applies_once_however_often_it_runs(net, k8s_fix, tmp_path):
    """The node line a DaemonSet may run on every restart: three runs, one rule per family, the right MSS."""
    line = _command(k8s_fix, "iptables -t mangle -C FORWARD")
    router(net, [line, line, line])
    assert _mangle_rules(net) == [
        f"-A FORWARD -p tcp -m tcp --tcp-flags SYN,RST SYN -j TCPMSS --set-mss {PATH_MTU - 40}",
        f"-A FORWARD -p tcp -m tcp --tcp-flags SYN,RST SYN -j TCPMSS --set-mss {PATH_MTU - 60}",
    ]
    assert syn_mss(net, 4, tmp_path) == PATH_MTU - 40
    assert syn_mss(net, 6, tmp_path) == PATH_MTU - 60


def test_the_daemonset_container_command_clamps_and_keeps_one_rule(net, k8s_fix, tmp_path):
    """The DaemonSet's container command, run as printed (sh -c ...) for a second in the router's place."""
    (manifest,) = [json.loads(s["text"]) for s in k8s_fix.snippets]
    container = manifest["spec"]["template"]["spec"]["containers"][0]
    assert container["command"][:2] == ["sh", "-c"]
    router(net, [])
    run = subprocess.run(["ip", "netns", "exec", net["router"], "timeout", "1", *container["command"]],
                         capture_output=True, text=True, timeout=30)  # fmt: skip
    assert run.returncode == 124, run.stderr  # still looping when timeout ended it: no command failed out
    router_rules = _mangle_rules(net)
    assert len(router_rules) == 2, router_rules
    assert syn_mss(net, 4, tmp_path) == PATH_MTU - 40
    assert syn_mss(net, 6, tmp_path) == PATH_MTU - 60
