"""The fix for the network in use: the overlay and its overhead read from the captures, the platform decided
honestly, and every CNI number with the arithmetic that gives it (docs/fixes.md).

Overheads are checked against the protocols' header sizes written out here (RFC 7348 VXLAN, RFC 8926 Geneve,
RFC 2784/2890 GRE, RFC 2003 IP-in-IP, WireGuard's message layout), measured by the real decoder on literal
packets, on the lab's real VXLAN capture and on the corpus' GRE and 6in4 captures.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import struct
import subprocess
from functools import cache

import pandas as pd
import pytest

import pcapmtu
from pcapmtu.diagnose import overlay, platforms
from pcapmtu.diagnose.overlay import Overlay
from pcapmtu.diagnose.platforms import EITHER, Network
from support.environment import CORPUS, SAMPLES
from support.packets import ether, gre, ipv4, ipv6, tcp, udp, vxlan
from support.pcapwriter import Pcapng, write_pcap


@cache
def analysed(scenario: str, platform: str = "auto"):
    """The lab scenario's host + container pair analysed once per test process."""
    pair = SAMPLES / scenario
    return pcapmtu.analyze(host=pair / "host.pcap", container=pair / "container.pcap", platform=platform)


INNER = tcp("10.244.1.5", "10.244.2.7", 40000, 443, flags=0x10, payload=b"x" * 100)
HEADERS = {"ipv4": 20, "ipv6": 40, "udp": 8, "vxlan": 8, "geneve": 8, "ethernet": 14, "gre": 4, "gre_key": 4}


def _geneve(inner_frame: bytes, options: bytes = b"", outer6: bool = False) -> bytes:
    head = struct.pack(">BBHI", len(options) // 4, 0, 0x6558, 7 << 8) + options
    body = struct.pack(">HHHH", 50000, 6081, 8 + len(head) + len(inner_frame), 0) + head + inner_frame
    return ipv6("fd00::1", "fd00::2", 17, body) if outer6 else ipv4("192.168.1.1", "192.168.1.2", 17, body)


def _vxlan6(inner_frame: bytes) -> bytes:
    vx = struct.pack(">BBHI", 0x08, 0, 0, 42 << 8) + inner_frame
    return ipv6("fd00::1", "fd00::2", 17, struct.pack(">HHHH", 50000, 4789, 8 + len(vx), 0) + vx)


OVERLAYS = {  # name -> (outer packet, kind, the overhead its headers add)
    "vxlan-4789": (vxlan(ether(INNER), 4789), "vxlan", HEADERS["ipv4"] + 8 + 8 + 14),
    "vxlan-8472": (vxlan(ether(INNER), 8472), "vxlan", 50),
    "vxlan-ipv6": (_vxlan6(ether(INNER)), "vxlan", HEADERS["ipv6"] + 8 + 8 + 14),
    "geneve": (_geneve(ether(INNER)), "geneve", 20 + 8 + 8 + 14),
    "geneve-8-byte-option": (_geneve(ether(INNER), b"\x01\x02\x03\x01abcd"), "geneve", 50 + 8),
    "gre": (gre(INNER), "gre", 20 + 4),
    "gre-key": (gre(INNER, key=True), "gre", 20 + 4 + 4),
    "ipip": (ipv4("192.168.1.1", "192.168.1.2", 4, INNER), "ipip", 20),
}


@pytest.mark.parametrize("name", OVERLAYS)
def test_overhead_is_measured_from_outer_and_inner_lengths(tmp_path, name):
    outer, kind, expected = OVERLAYS[name]
    path = tmp_path / f"{name}.pcap"
    write_pcap(path, [(1.0 + i, ether(outer)) for i in range(3)])
    found = overlay.overlays({"host": pcapmtu.read(path)}, server_ip="10.244.2.7")
    assert [(o.kind, o.overhead, o.measured, o.packets, o.carries_failing) for o in found] == [
        (kind, expected, True, 3, True)
    ]
    assert found[0].outer_ipv == (6 if "ipv6" in name else 4)


def test_encapsulation_by_category_codes_equals_by_text():
    """overlays() compares the categorical's codes (no text per packet); a plain column is compared as text."""
    values = ["vxlan", "none", None, "gre", "vxlan"]
    categorical = pd.Series(pd.Categorical(values, categories=["none", "vxlan", "geneve", "gre", "ipip"]))
    text = pd.Series(values, dtype=object)
    for kind in ("vxlan", "geneve", "gre", "ipip", "none"):
        by_codes, by_text = overlay._matcher(categorical)(kind), overlay._matcher(text)(kind)
        assert by_codes.tolist() == by_text.tolist() == [v == kind for v in values], kind


def _wg(kind: int, size: int) -> bytes:
    return struct.pack("<I", kind) + bytes(size - 4)


WIREGUARD = {  # payload, port, recognised? (by port and message size: the decoder keeps no UDP type byte)
    "handshake-initiation": (_wg(1, 148), 51820, True),
    "handshake-response": (_wg(2, 92), 51820, True),
    "cookie-reply": (_wg(3, 64), 51820, True),
    "data-keepalive": (_wg(4, 32), 51820, True),  # empty plaintext: header 16 + tag 16
    "data-1400": (_wg(4, 32 + 1392), 51871, True),  # Cilium's port; plaintext padded to 16
    "calico-ipv6-port": (_wg(4, 32 + 64), 51821, True),
    "data-unpadded": (_wg(4, 32 + 5), 51820, False),
    "initiation-wrong-size": (_wg(1, 100), 51820, False),
    "other-port": (_wg(1, 148), 51830, False),
    "short-datagram-on-the-port": (b"\x12\x34\x01\x00" + bytes(20), 51820, False),
}


@pytest.mark.parametrize("name", WIREGUARD)
def test_wireguard_is_known_by_port_and_message_layout(tmp_path, name):
    payload, port, expected = WIREGUARD[name]
    path = tmp_path / "wg.pcap"
    write_pcap(path, [(1.0, ether(udp("192.168.1.1", "192.168.1.2", 40000, port, payload)))])
    found = overlay.overlays({"host": pcapmtu.read(path)})
    assert [(o.kind, o.overhead, o.measured) for o in found] == (
        [("wireguard", 60, False)] if expected else []
    )


def test_wireguard_over_ipv6_counts_80(tmp_path):
    path = tmp_path / "wg6.pcap"
    write_pcap(path, [(1.0, ether(udp("fd00::1", "fd00::2", 40000, 51820, _wg(1, 148))))])
    (found,) = overlay.overlays({"host": pcapmtu.read(path)})
    assert (found.overhead, found.outer_ipv) == (40 + 8 + 32, 6)


def test_lab_vxlan_capture_measures_50_and_the_failing_traffic_inside_it():
    """The lab's real VXLAN device (VNI 4242, UDP 4789, truth.json): every host packet is VXLAN, 50 bytes."""
    truth = json.loads((SAMPLES / "vxlan_overlay/truth.json").read_text())
    a = analysed("vxlan_overlay")
    net = a.fix.network
    assert net["overlay"] == {"kind": "vxlan", "capture": "host", "packets": truth["facts"]["host"]["packets"],
                              "overhead": 50, "measured": True, "outer_ipv": 4, "carries_failing": True}  # fmt: skip
    mtus = truth["config"]["mtus"]
    # the path MTU measured on the inner packets is the VXLAN device's; the underlay carries it + 50
    assert a.path_mtu == mtus["host_uplink"] and a.path_mtu + 50 == mtus["vxlan_underlay"]
    assert a.fix.platform == EITHER  # VXLAN alone does not say Kubernetes
    values = {(s["system"], s["setting"]): s["value"] for s in a.fix.settings}
    assert values[("calico", "veth_mtu")] == values[("flannel", "FLANNEL_MTU")] == mtus["host_uplink"]
    assert values[("cilium", "mtu")] == mtus["vxlan_underlay"]  # Cilium's setting is the underlay's MTU
    assert values[("docker", "mtu")] == mtus["host_uplink"]


@pytest.mark.corpus
@pytest.mark.parametrize(("name", "kind", "overhead"), [("zeek__gre-sample.pcap", "gre", 24),
                                                        ("ndpi__6in4tunnel.pcap", "ipip", 20)])  # fmt: skip
def test_corpus_tunnels_measure_their_overhead(name, kind, overhead):
    path = CORPUS / "semantic" / name
    if not path.exists():
        pytest.skip(f"corpus file {path} not present")
    (found,) = overlay.overlays({"capture1": pcapmtu.read(path)})
    assert (found.kind, found.overhead, found.measured, found.outer_ipv) == (kind, overhead, True, 4)


# ------------------------------------------------------------------------------------ the numbers per CNI
PATH_MTU = 1450
# (system, setting, encapsulation) -> value for path MTU 1450 measured on plain packets: the CNIs' documented
# overheads (docs/fixes.md): VXLAN 50, IP-in-IP 20, WireGuard 60 over IPv4; Cilium's setting is the underlay
# MTU itself; OVN-Kubernetes keeps 100
EXPECTED_V4 = {
    ("calico", "veth_mtu", "vxlan"): 1400,
    ("calico", "vxlanMTU", "vxlan"): 1400,
    ("calico", "veth_mtu", "ipip"): 1430,
    ("calico", "ipipMTU", "ipip"): 1430,
    ("calico", "veth_mtu", "wireguard"): 1390,
    ("calico", "wireguardMTU", "wireguard"): 1390,
    ("calico", "veth_mtu", ""): 1450,
    ("cilium", "mtu", "vxlan"): 1450,
    ("cilium", "mtu", "geneve"): 1450,
    ("cilium", "mtu", "wireguard"): 1450,
    ("cilium", "mtu", ""): 1450,
    ("flannel", "FLANNEL_MTU", "vxlan"): 1400,
    ("flannel", "FLANNEL_MTU", "wireguard"): 1390,
    ("weave", "WEAVE_MTU", "vxlan"): 1400,
    ("ovn-kubernetes", "mtu", "geneve"): 1350,
}
EXPECTED_V6 = EXPECTED_V4 | {  # IPv6 underlay: VXLAN 70, WireGuard 80
    ("calico", "veth_mtu", "vxlan"): 1380,
    ("calico", "vxlanMTUV6", "vxlan"): 1380,
    ("calico", "veth_mtu", "wireguard"): 1370,
    ("calico", "wireguardMTUV6", "wireguard"): 1370,
    ("flannel", "FLANNEL_MTU", "vxlan"): 1380,
    ("flannel", "FLANNEL_MTU", "wireguard"): 1370,
    ("weave", "WEAVE_MTU", "vxlan"): 1380,
}
for _key in (
    ("calico", "vxlanMTU", "vxlan"),
    ("calico", "wireguardMTU", "wireguard"),
    ("calico", "veth_mtu", "ipip"),
    ("calico", "ipipMTU", "ipip"),
):  # Calico's IP-in-IP is IPv4 only
    EXPECTED_V6.pop(_key)


@pytest.mark.parametrize(("ipv", "expected"), [(4, EXPECTED_V4), (6, EXPECTED_V6)])
def test_every_cni_setting_for_an_unknown_tunnel(ipv, expected):
    settings, _ = platforms.kubernetes(
        Network("kubernetes", "--platform kubernetes", None, None), PATH_MTU, ipv
    )
    got = {(s["system"], s["setting"], s["encapsulation"]): s["value"] for s in settings}
    assert got == expected


def _arithmetic(line: str) -> None:
    """`NAME VALUE = ... path MTU P [inside X + O] [- N ...]`: the numbers in the line give the value."""
    value = int(re.search(r"[ =](\d+) = ", line).group(1))
    basis = re.search(r"path MTU (\d+)(?: inside \S+ \+ (\d+))?", line)
    total = int(basis.group(1)) + int(basis.group(2) or 0)
    minus = re.search(r"\) - (\d+)|\d - (\d+)", line.split(" = ", 1)[1])
    if minus:
        total -= int(minus.group(1) or minus.group(2))
    assert value == total, line


def test_each_line_states_the_arithmetic_of_its_value():
    for net in (Network("kubernetes", "", None, None),
                Network(EITHER, "", Overlay("vxlan", "host", 9, 50, True, 4, True), None),
                Network(EITHER, "", Overlay("vxlan", "host", 9, 50, True, 4, False), None)):  # fmt: skip
        settings, _ = platforms.kubernetes(net, PATH_MTU, 4)
        docker, _ = platforms.docker(net, PATH_MTU)
        assert settings and docker
        for s in settings + docker:
            assert str(s["value"]) in s["line"] and s["source"].startswith("https://")
            if s["system"] != "cilium":
                _arithmetic(s["line"])


def test_the_lead_example_line():
    settings, _ = platforms.kubernetes(Network("kubernetes", "", None, None), 1450, 4)
    lines = [s["line"] for s in settings]
    assert "Calico VXLAN: veth_mtu 1400 = path MTU 1450 - 50 VXLAN" in lines


def test_a_tunnel_carrying_the_failing_traffic_is_not_subtracted_twice():
    """Path MTU 1450 measured inside VXLAN is the pods' MTU already: Calico gets 1450, Cilium the underlay 1500."""
    o = Overlay("vxlan", "host", 9, 50, True, 4, True)
    settings, commands = platforms.kubernetes(Network(EITHER, "", o, None), 1450, 4)
    got = {(s["system"], s["setting"]): s["value"] for s in settings}
    assert got[("calico", "veth_mtu")] == 1450 and got[("cilium", "mtu")] == 1500
    assert {s["encapsulation"] for s in settings} <= {"vxlan"}  # only the CNIs' VXLAN modes: the tunnel seen
    assert any('"veth_mtu":"1450"' in c["command"] for c in commands)


# ------------------------------------------------------------------------------------ deciding the platform
def _pcapng_on(tmp_path, device: str):
    """The demo incident's container capture rewritten as pcapng taken on `device` (the name is the evidence)."""
    cap = pcapmtu.read(SAMPLES / "blackhole_tls12/container.pcap")
    raw = (SAMPLES / "blackhole_tls12/container.pcap").read_bytes()
    ng = Pcapng().shb().idb(1, 6, name=device)
    off = 24
    while off < len(raw):
        sec, usec, incl, orig = struct.unpack("<IIII", raw[off : off + 16])
        ng.epb(0, sec * 1_000_000 + usec, raw[off + 16 : off + 16 + incl], orig)
        off += 16 + incl
    path = tmp_path / f"{device}.pcapng"
    path.write_bytes(ng.bytes())
    assert len(pcapmtu.read(path).packets) == len(cap.packets)
    return path


@pytest.mark.parametrize(("device", "cni"), [("vxlan.calico", "calico"), ("cilium_vxlan", "cilium"),
                                             ("flannel.1", "flannel"), ("cali0123456789a", "calico"),
                                             ("eth0", None), ("lxcbr0", None),
                                             ("cali\x1b[31m<b>[x]", None)])  # untrusted text is no CNI's name  # fmt: skip
def test_a_cni_device_name_names_the_cni(tmp_path, device, cni):
    found = overlay.cnis({"container": pcapmtu.read(_pcapng_on(tmp_path, device))})
    assert [c.name for c in found] == ([cni] if cni else [])


def test_a_cni_device_is_strong_evidence(tmp_path):
    pod = _pcapng_on(tmp_path, "vxlan.calico")
    a = pcapmtu.analyze(host=SAMPLES / "blackhole_tls12/host.pcap", container=pod)
    assert (a.fix.platform, a.fix.network["cni"]) == ("kubernetes", "calico")
    assert "vxlan.calico" in a.fix.network["decided_by"]
    assert {s["system"] for s in a.fix.settings} == {"calico"}
    assert {s["encapsulation"] for s in a.fix.settings} == {"vxlan"}  # the device names the tunnel
    assert any('"veth_mtu":"1400"' in c["command"] for c in a.fix.commands)  # path 1450 - 50, plain basis
    assert not any(c["command"].startswith(("dockerd", "docker network")) for c in a.fix.commands)
    assert a.fix.summary.startswith("Clamp the TCP MSS to 1410 on the nodes")


def test_auto_without_an_overlay_speaks_docker_and_addresses_prove_nothing():
    a = analysed("blackhole_tls12")
    assert a.fix.platform == "docker" and a.fix.network["overlay"] is None
    assert {s["system"] for s in a.fix.settings} == {"docker"}
    assert json.loads(a.fix.snippets[0]["text"]) == {"mtu": 1450}


def test_platform_kubernetes_speaks_kubernetes_only():
    a = analysed("blackhole_tls12", "kubernetes")
    assert a.fix.platform == "kubernetes"
    # no CNI in the captures: the summary points at the settings, it does not pick one CNI's line
    assert a.fix.summary == (
        "Clamp the TCP MSS to 1410 on the nodes (or set your CNI's MTU: its line in the settings)."
    )
    assert len({s["system"] for s in a.fix.settings}) > 1
    assert {s["platform"] for s in a.fix.settings} == {"kubernetes"}
    assert not any("docker" in c["command"] for c in a.fix.commands)
    assert not any("daemon.json" in n for n in a.fix.notes)
    assert a.fix.commands[0]["command"].endswith("--set-mss 1410")  # the failing family's clamp stays first
    (manifest,) = [json.loads(s["text"]) for s in a.fix.snippets]
    assert manifest["kind"] == "DaemonSet" and manifest["spec"]["template"]["spec"]["hostNetwork"] is True
    script = manifest["spec"]["template"]["spec"]["containers"][0]["command"][2]
    assert "--set-mss 1410" in script and "--set-mss 1390" in script


def test_bad_platform_is_a_usage_error():
    with pytest.raises(pcapmtu.UsageError, match="platform must be one of"):
        pcapmtu.analyze(container=SAMPLES / "blackhole_tls12/container.pcap", platform="swarm")


# ------------------------------------------------------------------------------------ the printed commands
def _fixes() -> tuple:
    return analysed("blackhole_tls12", "kubernetes").fix, analysed("vxlan_overlay").fix


def test_patches_are_json_and_commands_fit_the_renderers():
    """Every -p/--patch argument is one single-quoted JSON object; every command fits the 400 characters the
    report shows whole."""
    seen = 0
    for fix in _fixes():
        for c in fix.commands:
            assert len(c["command"]) <= 400, c["command"]
            for patch in re.findall(r"(?:-p|--patch) '([^']*)'", c["command"]):
                assert isinstance(json.loads(patch), dict)
                seen += 1
    assert seen >= 4


KUBECTL_HELP = {  # subcommand words -> the flags pcapmtu's lines give it
    ("patch",): {"-n", "--type", "-p"},
    ("rollout", "restart"): {"-n"},
    ("set", "env"): {"-n", "-c"},
}


def test_kubectl_lines_use_flags_kubectl_has():
    """Each kubectl line's subcommand and flags, against `kubectl SUBCOMMAND --help` (offline, no cluster)."""
    if not shutil.which("kubectl"):
        pytest.skip(
            "kubectl not installed (Debian bookworm has no current kubectl package): flags not checked"
        )
    used: dict[tuple, set] = {}
    takes_value = {"-n", "-c", "-p", "--type", "--patch"}
    for fix in _fixes():
        for c in fix.commands:
            for part in c["command"].split(" && "):
                words = part.split()
                if words[0] != "kubectl":
                    continue
                positional, flags, skip = [], set(), False
                for word in words[1:]:
                    if skip:
                        skip = False
                    elif word.startswith("-"):
                        flags.add(word.split("=")[0])
                        skip = "=" not in word and word in takes_value
                    else:
                        positional.append(word)
                sub = tuple(positional[:2] if positional[0] in ("rollout", "set") else positional[:1])
                used.setdefault(sub, set()).update(flags)
    assert set(used) == set(KUBECTL_HELP), used
    for sub, flags in used.items():
        help_text = subprocess.run(
            ["kubectl", *sub, "--help"], capture_output=True, text=True, timeout=30
        ).stdout
        global_text = subprocess.run(
            ["kubectl", "options"], capture_output=True, text=True, timeout=30
        ).stdout
        for flag in flags:
            assert re.search(rf"(^|[\s,]){re.escape(flag)}[=,\s]", help_text + global_text, re.M), (sub, flag)


def test_a_tunnel_no_cni_uses_says_so(tmp_path):
    """GRE seen and Kubernetes stated: no CNI line fits; the summary and a note say what to do instead."""
    net = Network("kubernetes", "--platform kubernetes", Overlay("gre", "host", 9, 24, True, 4, True), None)
    settings, commands = platforms.kubernetes(net, PATH_MTU, 4)
    assert settings == [] and commands == []
    from pcapmtu.diagnose import fix as fixes
    from pcapmtu.results import Verdict

    fix = fixes.compute(Verdict.MTU_BLACKHOLE, PATH_MTU, 4, None, "download", network=net)
    assert fix.summary == "Clamp the TCP MSS to 1410 on the nodes (or give the pods an MTU of at most 1450)."
    assert any(n.startswith("No common CNI uses GRE") for n in fix.notes)


def test_wireguard_note_is_honest_about_what_it_cannot_see():
    from pcapmtu.diagnose import fix as fixes
    from pcapmtu.results import Verdict

    net = Network(EITHER, "", Overlay("wireguard", "host", 9, 60, False, 4, False), None)
    fix = fixes.compute(Verdict.MTU_BLACKHOLE, PATH_MTU, 4, None, "download", network=net)
    got = {(s["system"], s["setting"]): s["value"] for s in fix.settings}
    assert got[("calico", "veth_mtu")] == got[("flannel", "FLANNEL_MTU")] == 1390  # 1450 - 60
    assert got[("cilium", "mtu")] == 1450
    assert any("WireGuard is encrypted" in n for n in fix.notes)


def test_docs_example_lines_are_what_pcapmtu_prints():
    """Every settings line in docs/fixes.md's example is one pcapmtu gives for the demo incident on Kubernetes."""
    from pathlib import Path

    page = (Path(__file__).resolve().parents[1] / "docs" / "fixes.md").read_text()
    example = page.split("```\n", 2)[1]
    shown = [ln.strip() for ln in example.splitlines() if " = " in ln]
    lines = {s["line"] for s in analysed("blackhole_tls12", "kubernetes").fix.settings}
    assert len(shown) >= 6 and set(shown) <= lines, set(shown) - lines
    vxlan = {s["line"] for s in analysed("vxlan_overlay").fix.settings}
    assert (
        "Calico VXLAN: veth_mtu 1450 = underlay 1500 (path MTU 1450 inside VXLAN + 50) - 50 VXLAN (measured)"
        in vxlan
    )
    flat = " ".join(page.split())  # the page quotes the line, wrapped
    quoted = "`Calico VXLAN: veth_mtu 1450 = underlay 1500 (path MTU 1450 inside VXLAN + 50) - 50 VXLAN (measured)`"
    assert quoted in flat


@pytest.mark.parametrize(
    ("scenario", "platform"), [("blackhole_tls12", "kubernetes"), ("vxlan_overlay", "auto")]
)
def test_reports_show_settings_and_snippets_as_written(scenario, platform):
    """report.md: each settings line a list item, its source a code span, each snippet a JSON fence that parses
    back to the snippet; no backslash anywhere (nothing of pcapmtu's own needed escaping); report.html has them."""
    from markdown_it import MarkdownIt

    from pcapmtu.render.jsondoc import analyze_document
    from pcapmtu.render.report import render_html, render_markdown

    a = analysed(scenario, platform)
    doc = analyze_document(a)
    md = render_markdown(a, doc, [], "now")
    assert "\\" not in md
    tokens = MarkdownIt("commonmark").parse(md)
    fences = [json.loads(t.content) for t in tokens if t.type == "fence" and t.info == "json"]
    assert fences == [json.loads(s["text"]) for s in a.fix.snippets]
    codes = {
        c.content for t in tokens if t.type == "inline" for c in t.children or [] if c.type == "code_inline"
    }
    for s in a.fix.settings:
        assert f"- {s['line']} (" in md and s["source"] in codes
    page = render_html(a, doc, [], {}, "now")
    assert all(html.escape(s["line"]) in page for s in a.fix.settings)
    assert html.escape(a.fix.settings_heading) in page


def test_cli_platform_option():
    """--platform reaches the fix (any case); a value it does not know is exit 2 with typer's one line."""
    from typer.testing import CliRunner

    from pcapmtu.cli import app

    pair = [str(SAMPLES / "blackhole_tls12/host.pcap"), str(SAMPLES / "blackhole_tls12/container.pcap")]
    res = CliRunner().invoke(app, ["analyze", *pair, "--platform", "Kubernetes", "--json"])
    assert res.exit_code == 1, res.output  # the MTU verdict's code
    fix = json.loads(res.output)["fix"]
    assert fix["platform"] == "kubernetes" and fix["network"]["decided_by"] == "--platform kubernetes"
    res = CliRunner().invoke(app, ["analyze", *pair, "--platform", "swarm"])
    assert res.exit_code == 2 and "Traceback" not in res.output
