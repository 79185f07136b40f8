"""The lab captures in sample_pcaps/ really show what their truth.json says, with tshark as the oracle.

(a) For every committed scenario: the tshark facts recomputed from container.pcap/host.pcap equal the ones in
    truth.json, every recorded check (a display-filter count or a capture-format fact) still holds, the curl
    results match the expectations, hand-written headline claims hold, the file headers (read with struct)
    have the promised format, and no address outside the lab's ranges appears anywhere.
(b) `lab` marker: regenerate every scenario with lab.py into a temp dir (root and PCAPMTU_LAB=1 or CI=true)
    and run the same checks on the fresh captures. A scenario that fails to build fails the test.

Without tshark the oracle tests skip locally but fail when CI=true.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from support.environment import IN_CI
from support.tshark import version as tshark_version

LAB_DIR = Path(__file__).resolve().parents[1] / "sample_pcaps"
sys.path.insert(0, str(LAB_DIR))
import lab_oracle  # noqa: E402
import lab_scenarios  # noqa: E402

COMMITTED = sorted(p.parent.name for p in LAB_DIR.glob("*/truth.json"))
CAPTURES = ("container", "host")
MAX_CAPTURE_BYTES = 400_000
MAX_TOTAL_BYTES = 10_000_000
LAB_TIMEOUT_S = 600
# Facts derived from tshark's TCP sequence analysis; their exact values may change between tshark releases.
ANALYSIS_KEYS = {"retransmissions", "retransmissions_s2c"}

# Headline claims, written here independently of the catalog's checks: scenario, capture, filter, min, max.
HEADLINES = [
    *[
        row
        for name in (
            "blackhole_tls12",
            "blackhole_tls13",
            "vxlan_overlay",
            "any_sll2",
            "sll_v1",
            "pcapng",
            "nanosecond",
        )
        for row in (
            (name, "container", "tcp.srcport==443 && ip.len>1450 && !icmp", 0, 0),
            (
                name,
                "container",
                "tcp.flags.syn==1 && tcp.flags.ack==1 && tcp.srcport==443 && tcp.options.mss_val==1460",
                1,
                None,
            ),
            (
                name,
                "host",
                "tcp.flags.syn==1 && tcp.flags.ack==0 && tcp.dstport==443 && tcp.options.mss_val==1410",
                1,
                None,
            ),
            (name, "host", "icmp.type==3 && icmp.code==4", 0, 0),
        )
    ],
    ("blackhole_tls12", "container", "icmp.type==3 && icmp.code==4 && icmp.mtu==1450", 1, None),
    ("blackhole_http_large", "container", "tcp.srcport==80 && ip.len>1450 && !icmp", 0, 0),
    ("blackhole_http_large", "host", "tcp.srcport==80 && ip.len==1450", 1, None),
    ("blackhole_recovered", "container", "tcp.srcport==443 && ip.len>1450 && !icmp", 0, 0),
    ("blackhole_recovered", "container", "tcp.srcport==443 && tcp.len>0 && ip.len<1450", 20, None),
    ("blackhole_upload", "host", "tcp.dstport==80 && ip.len==1500", 2, None),
    ("blackhole_upload", "host", "icmp", 0, 0),
    ("pmtud_working", "host", "icmp.type==3 && icmp.code==4 && icmp.mtu==1450", 1, None),
    ("pmtud_working", "container", "icmp.type==3 && icmp.code==4 && icmp.mtu==1450", 1, None),
    (
        "fixed_clamp_setmss",
        "container",
        "tcp.flags.syn==1 && tcp.flags.ack==0 && tcp.options.mss_val==1460",
        1,
        None,
    ),
    (
        "fixed_clamp_setmss",
        "host",
        "tcp.flags.syn==1 && tcp.flags.ack==0 && tcp.options.mss_val==1410",
        1,
        None,
    ),
    ("fixed_clamp_setmss", "host", "tcp.flags.syn==1 && tcp.flags.ack==0 && tcp.options.mss_val>1410", 0, 0),
    ("fixed_clamp_pmtu", "host", "tcp.flags.syn==1 && tcp.flags.ack==0 && tcp.options.mss_val>1410", 0, 0),
    (
        "fixed_container_mtu",
        "container",
        "tcp.flags.syn==1 && tcp.flags.ack==0 && tcp.options.mss_val==1410",
        1,
        None,
    ),
    ("ipv6_blackhole", "container", "tcp.srcport==443 && ipv6.plen>1410 && !icmpv6", 0, 0),
    (
        "ipv6_blackhole",
        "container",
        "tcp.flags.syn==1 && tcp.flags.ack==0 && tcp.options.mss_val==1440",
        1,
        None,
    ),
    ("ipv6_blackhole", "host", "tcp.flags.syn==1 && tcp.flags.ack==0 && tcp.options.mss_val==1390", 1, None),
    ("ipv6_blackhole", "host", "icmpv6.type==2", 0, 0),
    ("vxlan_overlay", "host", "udp.dstport==4789 && vxlan", 1, None),
    ("offload_artifact", "container", "ip.len>1500", 1, None),
    ("filtered_443", "container", "tcp.flags.syn==1 && tcp.flags.ack==1 && tcp.srcport==443", 0, 0),
    ("filtered_443", "container", "tcp.flags.syn==1 && tcp.flags.ack==0 && tcp.dstport==443", 2, None),
    ("refused", "container", "tcp.srcport==443 && tcp.flags.reset==1", 1, None),
    ("lossy_link", "container", "tcp.analysis.retransmission", 1, None),
    ("lossy_link", "container", "tcp.srcport==80 && ip.len==1500", 10, None),
    ("slow_server", "container", "tcp.analysis.retransmission", 0, 2),
    ("slow_tls_server", "container", "tcp.srcport==443 && tcp.len>0 && tcp.time_delta>=3", 1, None),
    ("slow_tls_server", "container", "tcp.srcport==80 && tcp.len>0 && tcp.time_delta>=3", 0, 0),
    ("icmp_ignored", "container", "tcp.srcport==443 && ip.len>1450 && !icmp", 0, 0),
    ("icmp_ignored", "host", "icmp.type==3 && icmp.code==4", 0, 0),
    ("busy_keepalive", "container", "http.request && http.prev_request_in", 2, None),
    ("busy_keepalive", "container", "tcp.flags.reset==1", 0, 0),
]

# File header expectations, read with struct (independent of tshark): scenario -> capture -> (format, link).
PCAP_MAGIC = {0xA1B2C3D4: "pcap", 0xA1B23C4D: "pcap-nsec"}
PCAPNG_SHB = 0x0A0D0D0A
LINKTYPES = {1: "EN10MB", 113: "LINUX_SLL", 276: "LINUX_SLL2"}
FORMATS = {
    "any_sll2": {"container": ("pcap", "EN10MB"), "host": ("pcap", "LINUX_SLL2")},
    "sll_v1": {"container": ("pcap", "EN10MB"), "host": ("pcap", "LINUX_SLL")},
    "pcapng": {"container": ("pcapng", "EN10MB"), "host": ("pcapng", "EN10MB")},
    "nanosecond": {"container": ("pcap-nsec", "EN10MB"), "host": ("pcap-nsec", "EN10MB")},
}
DEFAULT_FORMAT = {"container": ("pcap", "EN10MB"), "host": ("pcap", "EN10MB")}


@pytest.fixture(scope="module")
def tshark() -> None:
    if lab_oracle.tshark_available():
        return
    if IN_CI:
        pytest.fail("tshark/capinfos not on PATH; CI must install the packages in sample_pcaps/APT_PACKAGES")
    pytest.skip("tshark/capinfos not installed")


def load_truth(directory: Path) -> dict:
    return json.loads((directory / "truth.json").read_text())


@functools.cache
def measured(path: Path) -> dict:
    return lab_oracle.measure(path)


@functools.cache
def filter_counts(directory: Path, role: str) -> dict[str, int]:
    """Frame counts of every display filter asked of one capture (recorded checks + headlines), one pass."""
    filters = {
        c["filter"] for c in load_truth(directory)["checks"] if c["capture"] == role and c.get("filter")
    }
    filters |= {row[2] for row in HEADLINES if row[0] == directory.name and row[1] == role}
    ordered = sorted(filters)
    return dict(zip(ordered, lab_oracle.count_matches(directory / f"{role}.pcap", ordered), strict=True))


def file_format(path: Path) -> tuple[str, str]:
    """(pcap | pcap-nsec | pcapng, link type) from the file header: global header or SHB + first IDB."""
    head = path.read_bytes()[:4096]
    (magic,) = struct.unpack("<I", head[:4])
    if magic == PCAPNG_SHB:
        (shb_len,) = struct.unpack("<I", head[4:8])
        block_type, _length, linktype = struct.unpack("<IIH", head[shb_len : shb_len + 10])
        assert block_type == 1, "the block after the section header is not an interface description"
        return "pcapng", LINKTYPES.get(linktype, str(linktype))
    assert magic in PCAP_MAGIC, f"unknown magic {magic:#x}"
    (linktype,) = struct.unpack("<I", head[20:24])
    return PCAP_MAGIC[magic], LINKTYPES.get(linktype & 0x0FFFFFFF, str(linktype))


def without(tree, keys: set[str]):
    if isinstance(tree, dict):
        return {k: without(v, keys) for k, v in tree.items() if k not in keys}
    if isinstance(tree, list):
        return [without(v, keys) for v in tree]
    return tree


# --- the checks, shared by the committed and the freshly generated captures -----------------------------


def check_schema(directory: Path) -> None:
    truth = load_truth(directory)
    assert truth["scenario"] == directory.name
    assert truth["expected_verdict"] in lab_scenarios.VERDICTS
    if truth["expected_verdict"] == "not_mtu":
        assert truth["not_mtu_reason"] in lab_scenarios.NOT_MTU_REASONS
    else:
        assert truth["not_mtu_reason"] is None
    for key in ("description", "config", "flows", "facts", "checks", "generation"):
        assert truth[key], f"truth.json has no {key}"
    for flow in truth["flows"]:
        assert flow["client"] in ("container", "host")
        assert flow["expected"] in ("failed", "succeeded", "slow")
        assert isinstance(flow["curl_exit_code"], int) and isinstance(flow["curl_time_s"], float | int)
    assert lab_oracle.truth_problems(truth) == [], "truth.json records a run that did not show its claim"
    for role in CAPTURES:
        size = (directory / f"{role}.pcap").stat().st_size
        assert 0 < size <= MAX_CAPTURE_BYTES, f"{role}.pcap is {size} bytes"


def check_formats(directory: Path) -> None:
    for role, expected in FORMATS.get(directory.name, DEFAULT_FORMAT).items():
        assert file_format(directory / f"{role}.pcap") == expected, f"{directory.name}/{role}.pcap"


def check_facts(directory: Path) -> None:
    """tshark, run now, finds the facts truth.json records (and only lab addresses)."""
    truth = load_truth(directory)
    for role in CAPTURES:
        facts, expected = measured(directory / f"{role}.pcap"), truth["facts"][role]
        if tshark_version() != truth["generation"]["tools"]["tshark"]:
            facts, expected = without(facts, ANALYSIS_KEYS), without(expected, ANALYSIS_KEYS)
        assert facts == expected, f"{directory.name}/{role}.pcap: tshark facts differ from truth.json"
        foreign = [a for a in facts["addresses"] if not lab_oracle.lab_address(a)]
        assert not foreign, f"{directory.name}/{role}.pcap has addresses outside the lab ranges: {foreign}"


def check_recorded_checks(directory: Path) -> None:
    failed = []
    for check in load_truth(directory)["checks"]:
        if check.get("filter"):
            observed = filter_counts(directory, check["capture"])[check["filter"]]
            ok = check.get("min", 0) <= observed <= check.get("max", observed)
        else:
            observed = lab_oracle.capture_format(directory / f"{check['capture']}.pcap")[
                check["fact"].split(".")[-1]
            ]
            ok = observed == check["equals"]
        if not ok:
            failed.append(
                f"{check['capture']}: {check['why']} [{check.get('filter') or check['fact']}] -> {observed}"
            )
    assert not failed, "\n".join(failed)


def check_headlines(directory: Path) -> None:
    failed = []
    for _, role, display_filter, low, high in (row for row in HEADLINES if row[0] == directory.name):
        count = filter_counts(directory, role)[display_filter]
        if count < low or (high is not None and count > high):
            failed.append(f"{role}.pcap: {display_filter!r} matches {count} frames, expected [{low}, {high}]")
    assert not failed, f"{directory.name}:\n" + "\n".join(failed)


# --- (a) committed captures -------------------------------------------------------------------------------


def test_every_scenario_is_committed() -> None:
    assert sorted(lab_scenarios.SCENARIOS) == COMMITTED, (
        "regenerate with: sudo python3 sample_pcaps/lab.py --all"
    )


def test_committed_captures_are_small() -> None:
    total = sum(p.stat().st_size for p in LAB_DIR.glob("*/*.pcap"))
    assert total < MAX_TOTAL_BYTES


def test_plan_rejects_addresses_outside_the_lab_ranges() -> None:
    with pytest.raises(lab_scenarios.CatalogError):
        lab_scenarios.Plan(internet_net=ipaddress.ip_network("8.8.8.0/24")).validate()
    lab_scenarios.Plan().validate()


def test_headline_table_covers_every_scenario() -> None:
    assert {row[0] for row in HEADLINES} == set(lab_scenarios.SCENARIOS)


@pytest.mark.parametrize("name", COMMITTED)
def test_truth_schema(name: str) -> None:
    check_schema(LAB_DIR / name)


@pytest.mark.parametrize("name", COMMITTED)
def test_file_format(name: str) -> None:
    check_formats(LAB_DIR / name)


@pytest.mark.oracle
@pytest.mark.parametrize("name", COMMITTED)
def test_facts_match_tshark(name: str, tshark: None) -> None:
    check_facts(LAB_DIR / name)


@pytest.mark.oracle
@pytest.mark.parametrize("name", COMMITTED)
def test_recorded_checks_hold(name: str, tshark: None) -> None:
    check_recorded_checks(LAB_DIR / name)


@pytest.mark.oracle
@pytest.mark.parametrize("name", COMMITTED)
def test_headline_claims(name: str, tshark: None) -> None:
    check_headlines(LAB_DIR / name)


# --- (b) regenerate everything -----------------------------------------------------------------------------


@pytest.mark.lab
def test_lab_regenerates_every_scenario(tmp_path: Path, tshark: None) -> None:
    if os.geteuid() != 0:
        pytest.skip("the lab needs root")
    fresh = os.environ.get("PCAPMTU_LAB_DIR")
    if fresh:  # .ci/run already rebuilt every scenario there (and failed loudly if one did not build)
        tmp_path = Path(fresh)
    elif not (os.environ.get("PCAPMTU_LAB") == "1" or IN_CI):
        pytest.skip("set PCAPMTU_LAB=1 (or CI=true) to rebuild all scenarios in network namespaces")
    else:
        cmd = [sys.executable, str(LAB_DIR / "lab.py"), "--all", "--jobs", "2", "--outdir", str(tmp_path)]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=LAB_TIMEOUT_S, check=False)
        assert proc.returncode == 0, f"lab.py exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    for name in lab_scenarios.SCENARIOS:
        directory = tmp_path / name
        check_schema(directory)
        check_formats(directory)
        check_facts(directory)
        check_recorded_checks(directory)
        check_headlines(directory)
