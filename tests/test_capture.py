"""`pcapmtu capture`'s parts that need no root and no namespace: the tcpdump command and filter, the pcap ->
pcapng rewrite with its comments, the clamp rules read from iptables-save and nft, the veth peer found from
`ip -json` output, the DF ping bisection, the metadata `analyze` takes from beside its captures, and the
command line's usage errors. The real thing runs in tests/test_lab_capture.py and tests/test_capture_docker.py.
"""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

import pcapmtu
from pcapmtu.capture import clamps, interfaces, metadata, namespaces, pcapng, reproduce, tcpdump
from pcapmtu.cli import app
from pcapmtu.errors import CaptureFailed
from support.environment import SAMPLES, require_tool

BLACKHOLE = SAMPLES / "blackhole_tls12"
runner = CliRunner()


def invoke(*args):
    result = runner.invoke(app, [str(a) for a in args])
    return result, f"exit {result.exit_code}\n{result.output}"


# ---------------------------------------------------------------------------------------- tcpdump


def test_the_tcpdump_command_keeps_headers_flushes_at_once_and_writes_as_root():
    cmd = tcpdump.command("eth0", Path("/x/host.pcap"), 512, "tcp")
    assert cmd == [
        "tcpdump", "-i", "eth0", "-s", "512", "-U", "--immediate-mode", "-n", "-Z", "root", "-w", "/x/host.pcap", "tcp",
    ]  # fmt: skip
    ns = namespaces.Namespace("/run/netns/app", "netns", "app")
    assert ns.run(cmd)[:2] == ["nsenter", "--net=/run/netns/app"]


@pytest.mark.parametrize(
    ("linktype", "ip_link_type"),
    [(1, "ether"), (276, ""), (101, "none"), (1, None)],
    ids=["ethernet", "any (linux-sll2)", "tunnel (raw ip)", "unknown"],
)
def test_the_default_filter_compiles_for_the_link_type_and_keeps_what_the_analysis_needs(
    tmp_path, linktype, ip_link_type
):
    """tcpdump itself compiles it (against an empty capture's link type: no interface, no root)."""
    require_tool("tcpdump")
    empty = tmp_path / "empty.pcap"
    empty.write_bytes(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, linktype))
    bpf = tcpdump.default_filter(ip_link_type)
    assert ("vlan and" in bpf) == (linktype == 1)
    done = subprocess.run(
        ["tcpdump", "-d", "-r", str(empty), bpf],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    for kept in (
        "tcp",
        "icmp",
        "icmp6",
        "port 53",
        "udp port 4789",
        "udp port 8472",
        "udp port 6081",
        "vlan and",
    ):
        assert kept in tcpdump.DEFAULT_FILTER


@pytest.mark.parametrize(
    ("log", "line"),
    [
        ("tcpdump: nosuch0: No such device exists\n(No such device exists)\n", "tcpdump: nosuch0: No such device exists"),
        ("tcpdump: listening on eth0, link-type EN10MB\ntcpdump: eth0: That device is not up\n", "tcpdump: eth0: That device is not up"),
        ("nsenter: cannot open /proc/9/ns/net: No such file or directory\n", "nsenter: cannot open /proc/9/ns/net: No such file or directory"),
    ],
    ids=["no-device", "after-listening", "nsenter"],
)  # fmt: skip
def test_a_tcpdump_that_fails_is_told_in_its_own_words(tmp_path, log, line):
    (tmp_path / "log").write_text(log)
    dump = tcpdump.Tcpdump("host", "nosuch0", tmp_path / "x.pcap", tmp_path / "log", [])
    assert dump.failure() == line


# ---------------------------------------------------------------------------------------- pcapng


def _comments(data: bytes, offset: int = 0) -> tuple[list[str], int]:
    """opt_comment values of the block at `offset` (SHB or IDB of this writer) and the block's length."""
    kind, length = struct.unpack_from("<II", data, offset)
    pos = offset + (24 if kind == 0x0A0D0D0A else 16)
    found = []
    while pos < offset + length - 4:
        code, size = struct.unpack_from("<HH", data, pos)
        if code == 0:
            break
        if code == 1:
            found.append(data[pos + 4 : pos + 4 + size].decode())
        pos += 4 + size + (-size % 4)
    return found, length


def test_the_pcapng_rewrite_keeps_every_packet_and_carries_the_comments(tmp_path):
    source = BLACKHOLE / "container.pcap"
    out = tmp_path / "container.pcapng"
    doc = {"schema": metadata.SCHEMA, "mtus": {"container": 1500, "host": 1450}}
    count = pcapng.convert(
        source,
        out,
        comments=["summary line", json.dumps(doc)],
        iface="eth0",
        iface_comment="eth0, MTU 1500",
        bpf="tcp or icmp",
        application="pcapmtu test",
    )
    before, after = pcapmtu.read(source), pcapmtu.read(out)
    assert count == pcapng.count(source) == len(before.packets) == len(after.packets) > 0
    for column in ("ts", "caplen", "wirelen", "ip_len", "tcp_seq", "src", "dst"):
        if column in before.packets:
            assert before.packets[column].tolist() == after.packets[column].tolist(), column
    data = out.read_bytes()
    shb, shb_len = _comments(data)
    assert shb[0] == "summary line" and json.loads(shb[1]) == doc
    idb, _ = _comments(data, shb_len)
    assert idb == ["eth0, MTU 1500"]
    assert after.summary()["format"] == "pcapng"


def test_a_capture_cut_mid_packet_keeps_the_whole_packets(tmp_path):
    source = tmp_path / "cut.pcap"
    raw = (BLACKHOLE / "container.pcap").read_bytes()
    source.write_bytes(raw[: len(raw) - 7])
    count = pcapng.convert(
        source, tmp_path / "cut.pcapng", comments=[], iface="eth0", iface_comment="", bpf="", application="t"
    )
    assert count == pcapng.count(source) == len(pcapmtu.read(BLACKHOLE / "container.pcap").packets) - 1


def test_a_file_tcpdump_did_not_write_is_refused(tmp_path):
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(b"\x00" * 40)
    with pytest.raises(CaptureFailed, match="not a pcap file"):
        pcapng.convert(bad, tmp_path / "o", comments=[], iface="x", iface_comment="", bpf="", application="t")


# ---------------------------------------------------------------------------------------- clamps


def test_clamp_rules_are_read_from_iptables_save_and_nft():
    saved = """*mangle
:FORWARD ACCEPT [0:0]
-A FORWARD -o eth0 -p tcp -m tcp --tcp-flags SYN,RST SYN -j TCPMSS --set-mss 1410
-A FORWARD -p tcp -m tcp --tcp-flags SYN,RST SYN -j TCPMSS --clamp-mss-to-pmtu
-A FORWARD -p tcp -j MARK --set-mark 0x1
COMMIT"""
    found = clamps.parse("iptables-save", saved)
    assert [(c.mss, c.to_pmtu) for c in found] == [(1410, False), (None, True)]
    ruleset = """table inet pcapmtu {
        chain forward {
                type filter hook forward priority mangle; policy accept;
                meta nfproto ipv4 tcp flags syn / syn,rst tcp option maxseg size set 1410
                tcp flags syn / syn,rst tcp option maxseg size set rt mtu
        }
}"""
    found = clamps.parse("nft", ruleset)
    assert [(c.mss, c.to_pmtu) for c in found] == [(1410, False), (None, True)]
    assert found[0].rule.startswith("meta nfproto ipv4")


def test_iptables_nft_rules_are_counted_once():
    """iptables-nft's rules show in `nft list ruleset` too, in its own tables: counted from iptables-save."""
    ruleset = """table ip mangle {
        chain FORWARD {
                oifname "eth9" tcp flags syn / syn,rst counter packets 0 bytes 0 tcp option maxseg size set 1460
        }
}
table inet pcapmtu {
        chain forward {
                tcp flags syn / syn,rst tcp option maxseg size set 1410
        }
}"""
    assert [c.mss for c in clamps.parse("nft", ruleset, skip_xtables=True)] == [1410]
    assert [c.mss for c in clamps.parse("nft", ruleset)] == [1460, 1410]  # legacy iptables: nft's own


# ---------------------------------------------------------------------------------------- interfaces


def _link(ifindex, name, mtu, kind="veth", link_index=None, master=None):
    link = {"ifindex": ifindex, "ifname": name, "mtu": mtu, "linkinfo": {"info_kind": kind}}
    if link_index is not None:
        link["link_index"] = link_index
    if master:
        link["master"] = master
    return link


def test_the_veth_peer_and_its_bridge_are_found_through_the_peer_index(monkeypatch):
    inside = [_link(1, "lo", 65536, ""), _link(9, "eth0", 1500, link_index=12)]
    host = [
        _link(2, "ens5", 1450, ""),
        _link(3, "docker0", 1500, "bridge"),
        _link(9, "vethfake", 1500, link_index=40),  # same index as the container's eth0: not its peer
        _link(12, "veth1a2b", 1500, link_index=9, master="docker0"),
    ]
    monkeypatch.setattr(interfaces, "links", lambda ns: inside if ns else host)
    ns = namespaces.Namespace("/proc/1/ns/net", "pid", "1", 1)
    found = [(i.role, i.name, i.mtu) for i in interfaces.survey(ns, "eth0", "ens5")]
    assert found == [
        ("container", "eth0", 1500),
        ("veth", "veth1a2b", 1500),
        ("bridge", "docker0", 1500),
        ("uplink", "ens5", 1450),
    ]
    with pytest.raises(
        CaptureFailed, match="no interface eth1 in the container's namespace \\(it has: eth0\\)"
    ):
        interfaces.survey(ns, "eth1", "ens5")


# ---------------------------------------------------------------------------------------- DF ping bisection


class FakePath:
    """Probes over a path that carries `mtu`-byte packets: a DF ping passes when its IP packet fits."""

    def __init__(self, mtu: int, answers: bool = True, cached: int | None = None) -> None:
        self.mtu, self.answers, self.sent, self.cached, self.flushed = mtu, answers, [], cached, 0

    def run(self, cmd, timeout, cleanup=False):
        if cmd[-3:] == ["route", "flush", "cache"]:
            self.cached, self.flushed = None, self.flushed + 1
            return SimpleNamespace(returncode=0, stdout="", stderr="")
        if "route" in cmd:  # ip -json route get: the cached path MTU, as iproute2 prints it
            learned = {"expires": 599, "metrics": [{"mtu": self.cached}]} if self.cached else {}
            route = {"dst": cmd[-1], "cache": []} | learned
            return SimpleNamespace(returncode=0, stdout=json.dumps([route]), stderr="")
        size = int(cmd[cmd.index("-s") + 1])
        self.sent.append(size)
        ok = self.answers and size + 28 <= self.mtu
        if not ok and self.answers:
            self.cached = self.mtu  # the narrow hop's "fragmentation needed" is cached by the sender
        return SimpleNamespace(returncode=0 if ok else 1, stdout="", stderr="")


def _fake_path(monkeypatch, mtu: int, answers: bool = True) -> FakePath:
    monkeypatch.setattr(reproduce.time, "sleep", lambda _s: None)
    return FakePath(mtu, answers)


@pytest.mark.parametrize("mtu", [1450, 1400, 1280, 1500])
def test_the_ping_bisection_finds_the_path_mtu(monkeypatch, mtu):
    path = _fake_path(monkeypatch, mtu)
    ns = namespaces.Namespace("/run/netns/c", "netns", "c")
    result = reproduce.bisect(ns, "198.18.0.11", 1500, path).as_dict()
    assert result["largest_ok_ip"] == mtu
    assert result["smallest_lost_ip"] == (None if mtu == 1500 else mtu + 1)
    assert len(path.sent) <= 13  # log2(1472 - 56) + the two ends


def test_a_route_mtu_is_not_taken_for_a_learned_one(monkeypatch):
    """`ip route add ... mtu 1400` is the route's own MTU (no expiry): never flushed, never counted."""
    ns = namespaces.Namespace("/run/netns/c", "netns", "c")
    static = json.dumps([{"dst": "198.18.0.11", "cache": [], "metrics": [{"mtu": 1400}]}])
    probes = SimpleNamespace(
        run=lambda cmd, timeout, cleanup=False: SimpleNamespace(returncode=0, stdout=static)
    )
    assert reproduce.cached_mtu(ns, "198.18.0.11", probes) is None


def test_a_path_mtu_the_pings_left_cached_is_flushed_and_one_there_before_is_kept(monkeypatch):
    ns = namespaces.Namespace("/run/netns/c", "netns", "c")
    path = _fake_path(monkeypatch, 1450)
    result = reproduce.bisect(ns, "198.18.0.11", 1500, path)
    assert (result.cached_mtu_before, result.cached_mtu_after, result.cache_flushed) == (None, 1450, True)
    assert path.flushed == 1 and path.cached is None  # the container's next SYN is as before the pings
    path = FakePath(1450, cached=1400)
    result = reproduce.bisect(ns, "198.18.0.11", 1500, path)
    assert result.cached_mtu_before == 1400 and not result.cache_flushed and path.flushed == 0


def test_a_server_that_answers_no_ping_is_said_not_guessed(monkeypatch):
    path = _fake_path(monkeypatch, 1450, answers=False)
    ns = namespaces.Namespace("/run/netns/c", "netns", "c")
    result = reproduce.bisect(ns, "198.18.0.11", 1500, path)
    assert not result.answered and result.largest_ok is None and len(result.tries) == 1


@pytest.mark.parametrize("url", ["ftp://198.18.0.11/", "198.18.0.11", "http:///path"])
def test_reproduce_takes_http_urls_only(url):
    with pytest.raises(CaptureFailed, match="an http:// or https:// URL"):
        reproduce.url_host(url)


def test_reproduce_url_address_is_taken_as_is():
    assert reproduce.url_host("https://[fd00::11]:8443/x") == ("fd00::11", "fd00::11")


# ---------------------------------------------------------------------------------------- metadata, analyze


def _captured_dir(tmp_path: Path, **changes) -> Path:
    """The lab's blackhole captures as if `pcapmtu capture` had written them, with its metadata beside."""
    for role in ("host", "container"):
        shutil.copy(BLACKHOLE / f"{role}.pcap", tmp_path / f"{role}.pcap")
    doc = {
        "schema": metadata.SCHEMA,
        "captures": {"container": {"file": "container.pcap"}, "host": {"file": "host.pcap"}},
        "mtus": {"container": 1500, "host": 1450},
        "clamps": [{"source": "iptables-save", "rule": "-A FORWARD -o ens9 -j TCPMSS --set-mss 1460"}],
    } | changes
    (tmp_path / metadata.NAME).write_text(json.dumps(doc))
    return tmp_path


def test_analyze_takes_the_mtus_and_clamps_recorded_beside_its_captures(tmp_path):
    d = _captured_dir(tmp_path)
    result, out = invoke("analyze", d / "host.pcap", d / "container.pcap", "--json")
    assert result.exit_code == 1, out
    assert (
        "from the capture metadata" in result.stderr
        and "MTUs host uplink 1450, container 1500" in result.stderr
    )
    doc = json.loads(result.stdout)
    kinds = {s["kind"]: s for s in doc["path"]["ipv4"]["signals"]}
    assert kinds["stated_host_mtu"]["mtu"] == 1450
    assert kinds["stated_container_mtu"]["mtu"] == 1500
    notes = " ".join(doc["fix"]["notes"])
    assert "MSS clamp rules already" in notes and "--set-mss 1460" in notes, notes
    assert "do not match the failing traffic" in notes


def test_mtus_given_on_the_command_line_win_over_the_metadata(tmp_path):
    d = _captured_dir(tmp_path)
    result, out = invoke("analyze", d / "host.pcap", d / "container.pcap", "--json", "--host-mtu", "1460")
    doc = json.loads(result.stdout)
    kinds = {s["kind"]: s for s in doc["path"]["ipv4"]["signals"]}
    assert kinds["stated_host_mtu"]["mtu"] == 1460, out
    assert "host uplink" not in result.stderr and "container 1500" in result.stderr


@pytest.mark.parametrize(
    ("kind", "given", "platform", "decided"),
    [
        ("container", [], "docker", "pcapmtu capture took a docker container's captures"),
        ("netns", [], "docker", "no overlay in the captures and no --platform"),  # auto, nothing recorded
        ("container", ["--platform", "kubernetes"], "kubernetes", "--platform kubernetes"),  # the user wins
    ],
    ids=["docker-container", "netns", "platform-given"],
)
def test_the_fix_speaks_for_the_platform_the_metadata_recorded(tmp_path, kind, given, platform, decided):
    """`capture --container` took a Docker container's captures: the fix speaks Docker and says why; a
    namespace or a PID says nothing about the platform; --platform on the command line wins."""
    d = _captured_dir(
        tmp_path, namespace={"kind": kind, "name": "jenkins", "pid": 4242, "path": "/proc/4242/ns/net"}
    )
    result, out = invoke("analyze", d / "host.pcap", d / "container.pcap", "--json", *given)
    assert result.exit_code == 1, out
    fix = json.loads(result.stdout)["fix"]
    assert fix["platform"] == platform, out
    assert fix["network"]["decided_by"] == decided, fix["network"]


def test_a_hostile_clamp_rule_in_the_metadata_stays_inert(tmp_path):
    """The metadata may come from a stranger's pcapng: a rule string with terminal escapes, rich markup and HTML
    reaches the terminal with its control bytes made visible and its markup literal, and the report escaped."""
    rule = "-A FORWARD [bold red]EVIL[/] <script>alert(1)</script> \x1b[31mRED\x1b[0m \u202eevil"
    d = _captured_dir(tmp_path, clamps=[{"source": "iptables-save", "rule": rule}])
    result, out = invoke("analyze", d / "host.pcap", d / "container.pcap", "--out", d / "report")
    assert result.exit_code == 1, out
    assert "\x1b" not in result.stdout and "\u202e" not in result.stdout
    assert "[bold red]EVIL[/]" in result.stdout  # shown as written, not styled
    html = (d / "report" / "report.html").read_text()
    assert "<script>alert" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "\x1b" not in html and "\x1b" not in (d / "report" / "report.md").read_text()


def test_metadata_that_names_other_captures_is_not_applied(tmp_path):
    d = _captured_dir(tmp_path, captures={"host": {"file": "other.pcapng"}})
    result, out = invoke("analyze", d / "host.pcap", d / "container.pcap", "--json")
    assert "capture metadata" not in result.stderr, out
    kinds = {s["kind"] for s in json.loads(result.stdout)["path"]["ipv4"]["signals"]}
    assert "stated_host_mtu" not in kinds


@pytest.mark.parametrize(
    ("content", "words"),
    [("{not json", "ignored"), (json.dumps({"schema": "other/1"}), "not a pcapmtu-capture/1 document")],
    ids=["damaged", "foreign"],
)
def test_unreadable_metadata_is_a_warning_and_the_analysis_goes_on(tmp_path, content, words):
    d = _captured_dir(tmp_path)
    (d / metadata.NAME).write_text(content)
    result, out = invoke("analyze", d / "host.pcap", d / "container.pcap", "--json")
    assert result.exit_code == 1 and json.loads(result.stdout)["verdict"] == "mtu_blackhole", out
    (line,) = result.stderr.splitlines()
    assert line.startswith("pcapmtu: warning: ") and words in line


def test_recorded_mtus_must_be_mtus(tmp_path):
    d = _captured_dir(tmp_path, mtus={"container": True, "host": 70000})
    recorded, warning = metadata.beside([d / "host.pcap"])
    assert recorded is not None and not warning
    assert recorded.host_mtu is None and recorded.container_mtu is None


# ---------------------------------------------------------------------------------------- the command line


@pytest.mark.parametrize(
    ("args", "words"),
    [
        ([], "say which container: one of --container NAME, --pid PID, --netns NAME"),
        (["--pid", "1", "--netns", "x"], "(not --pid and --netns together)"),
        (["--netns", "x", "--duration", "0"], "--duration 0: a number of seconds above 0"),
        (["--netns", "x", "--snaplen", "-1"], "--snaplen -1: 0 (whole packets) to 262144 bytes"),
        (["--netns", "x", "--max-size", "lots"], "--max-size:"),
        (["--netns", "x", "--reproduce-timeout", "-2"], "--reproduce-timeout -2"),
    ],
    ids=["no-target", "two-targets", "duration", "snaplen", "max-size", "reproduce-timeout"],
)
def test_usage_errors_are_one_line_and_exit_2(tmp_path, args, words):
    result, out = invoke("capture", *args, "--out", tmp_path / "cap")
    assert result.exit_code == 2, out
    (line,) = result.stderr.splitlines()
    assert words in line, line
    assert not (tmp_path / "cap").exists()


def test_without_root_nothing_starts(monkeypatch, tmp_path):
    monkeypatch.setattr(namespaces.os, "geteuid", lambda: 1000)
    result, out = invoke("capture", "--container", "web", "--out", tmp_path / "cap")
    assert result.exit_code == 2, out
    assert result.stderr.splitlines() == [
        "pcapmtu: pcapmtu capture needs root (tcpdump and nsenter): run it with sudo"
    ]


def test_without_the_docker_cli_container_says_what_to_use(monkeypatch, tmp_path):
    monkeypatch.setattr(namespaces.os, "geteuid", lambda: 0)
    real_which = shutil.which
    monkeypatch.setattr(
        namespaces.shutil, "which", lambda t: None if t == "docker" else real_which(t) or f"/x/{t}"
    )
    result, out = invoke("capture", "--container", "web", "--out", tmp_path / "cap")
    assert result.exit_code == 2, out
    assert "docker not found on PATH: --container needs the docker CLI (or use --pid PID)" in result.stderr


def test_files_it_would_replace_need_force(tmp_path, monkeypatch):
    monkeypatch.setattr(namespaces.os, "geteuid", lambda: 0)
    out = tmp_path / "cap"
    out.mkdir()
    (out / "host.pcapng").write_text("an earlier capture")
    result, text = invoke("capture", "--netns", "x", "--out", out)
    assert result.exit_code == 2, text
    assert "host.pcapng exists" in result.stderr and "--force" in result.stderr
    assert (out / "host.pcapng").read_text() == "an earlier capture"


@pytest.mark.oracle  # tshark's tools: not the fast tier
def test_wireshark_reads_the_comments_and_the_interface(tmp_path):
    """What Wireshark's tools show of the rewrite: the capture comments and the interface's name."""
    require_tool("capinfos")
    require_tool("tshark")
    out = tmp_path / "host.pcapng"
    pcapng.convert(
        BLACKHOLE / "host.pcap",
        out,
        comments=["pcapmtu capture of container web", '{"schema":"pcapmtu-capture/1"}'],
        iface="ens5",
        iface_comment="ens5, MTU 1450",
        bpf="tcp or icmp",
        application="pcapmtu test",
    )
    info = subprocess.run(["capinfos", "-k", str(out)], capture_output=True, text=True, check=True).stdout
    assert "Capture comment:     pcapmtu capture of container web" in info
    assert 'Capture comment:     {"schema":"pcapmtu-capture/1"}' in info
    names = subprocess.run(
        ["tshark", "-r", str(out), "-T", "fields", "-e", "frame.interface_name", "-c", "3"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert names == ["ens5"] * 3


def test_stopped_probes_end_the_running_child_and_start_no_other():
    probes = reproduce.Probes()
    done = {}

    def run_sleep():
        try:
            probes.run(["sleep", "30"], 60)
        except reproduce.Stopped:
            done["stopped"] = True

    worker = threading.Thread(target=run_sleep)
    worker.start()
    while probes.current is None:
        time.sleep(0.01)
    child = probes.current
    probes.stop()
    worker.join(10)
    assert done == {"stopped": True} and child.returncode is not None  # ended by its PID
    with pytest.raises(reproduce.Stopped):
        probes.run(["true"], 5)


def _pcapng_with(tmp_path: Path, role: str, doc: dict) -> Path:
    out = tmp_path / f"{role}.pcapng"
    pcapng.convert(
        BLACKHOLE / f"{role}.pcap", out, comments=["summary", json.dumps(doc)], iface="eth0",
        iface_comment="", bpf="", application="t",
    )  # fmt: skip
    return out


def test_captures_copied_without_the_json_file_still_bring_their_metadata(tmp_path):
    doc = {
        "schema": metadata.SCHEMA,
        "captures": {"host": {"file": "host.pcapng"}, "container": {"file": "container.pcapng"}},
        "mtus": {"container": 1500, "host": 1450},
        "clamps": [],
    }
    host, container = (_pcapng_with(tmp_path, role, doc) for role in ("host", "container"))
    assert metadata.inside(host) == doc
    assert metadata.inside(BLACKHOLE / "host.pcap") is None  # pcap: no comments
    result, out = invoke("analyze", host, container, "--json")
    assert f"from the capture metadata ({host})" in result.stderr, out
    kinds = {s["kind"]: s for s in json.loads(result.stdout)["path"]["ipv4"]["signals"]}
    assert kinds["stated_host_mtu"]["mtu"] == 1450


@pytest.mark.parametrize(
    "changes",
    [{"mtus": [1450]}, {"mtus": {"host": "1450"}}, {"clamps": "TCPMSS"}, {"clamps": [{"rule": ["x"]}, 7]}],
    ids=["mtus-list", "mtu-string", "clamps-string", "clamp-rule-list"],
)
def test_metadata_of_the_wrong_shape_is_not_taken_and_breaks_nothing(tmp_path, changes):
    doc = {"schema": metadata.SCHEMA, "captures": {"host": {"file": "host.pcapng"}}, **changes}
    host = _pcapng_with(tmp_path, "host", doc)
    recorded, _ = metadata.beside([host])
    assert recorded is not None
    assert (recorded.host_mtu, recorded.container_mtu, recorded.clamp_rules) == (None, None, ())
    result, out = invoke("analyze", host, "--json")
    assert result.exit_code in (0, 1, 3), out
