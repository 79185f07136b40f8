"""Wireshark's word on the evidence (pcapmtu/wireshark.py): on the lab captures every evidence frame of every
finding is asked about and Wireshark agrees; a wrong claim is flagged; a missing tshark or pyshark is one line;
the cost is one tshark run per capture and a bounded number of frames."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

import pcapmtu
from pcapmtu.diagnose import wireshark
from pcapmtu.diagnose.detectors import RULES
from support.environment import IN_CI, SAMPLES, lab_scenarios, require_tool
from support.report_schema import validate_or_fail

pytestmark = pytest.mark.oracle

FRAMELESS = {"X001", "L001", "L002", "Q005"}  # findings that name no frames: nothing to ask Wireshark


@pytest.fixture(autouse=True)
def _tools():
    require_tool("tshark")
    try:
        import pyshark  # noqa: F401
    except ImportError:
        if IN_CI:
            pytest.fail("pyshark is not installed but CI must run this test (it is in the dev extra)")
        pytest.skip("pyshark not installed (pip install 'pcapmtu[deep]')")


def _analyze(scenario: Path, inputs: dict):
    kw = {k: ([scenario / x for x in v] if k == "captures" else scenario / v) for k, v in inputs.items()}
    return pcapmtu.analyze(**kw)


def _entries() -> list:
    """Each scenario's first analysis, and every analysis of a server capture alone (B004/B005 at the sender)."""
    params = []
    for scenario in lab_scenarios():
        entries = json.loads((scenario / "truth.json").read_text()).get("analyses", [])
        for i, entry in enumerate(entries):
            if i == 0 or set(entry["inputs"]) == {"server"}:
                label = f"{scenario.name}/{i}:" + "+".join(sorted(entry["inputs"]))
                params.append(pytest.param(scenario, entry["inputs"], id=label))
    return params


def _evidence(result) -> set[tuple[str, str, int]]:
    """(code, capture, frame) of every evidence frame, with M002's SYNs in the far capture."""
    out = set()
    for f in result.findings_list:
        out |= {(f.code, f.capture, int(x)) for x in f.frames}
        if f.code == "M002":
            out |= {(f.code, result.context.far_role, int(x)) for x in f.evidence["host_syn_frames"]}
    return out


def test_every_code_that_names_frames_has_a_claim():
    assert set(RULES) - FRAMELESS == set(wireshark.CLAIMS)


@pytest.mark.parametrize(("scenario", "inputs"), _entries())
def test_wireshark_agrees_with_every_evidence_frame(scenario, inputs):
    result = _analyze(scenario, inputs)
    check = result.wireshark()
    assert not check.unavailable
    rows = check.rows
    asked = set(zip(rows["code"], rows["capture"], rows["frame"].astype(int), strict=True))
    assert asked == _evidence(result), "every evidence frame of every finding is checked"
    bad = rows[rows["status"] != "agree"]
    assert bad.empty, bad[["code", "capture", "frame", "why"]].to_string()
    assert (rows["wireshark"] != "").all() and (rows["claim"] != "").all()
    roles = {c for _code, c, _f in asked}
    assert check.tshark_runs == len(roles)
    assert check.frames_asked == len({(c, f) for _code, c, f in asked})


def _cut(tmp_path, scenario: str, roles, **cut) -> dict:
    from support.cuts import frames_of

    d = SAMPLES / scenario
    return {r: frames_of(d / f"{r}.pcap").write(tmp_path / f"{r}.pcap", **cut) for r in roles}


@pytest.mark.parametrize(
    ("roles", "cut", "code"),
    [
        (("container",), {"start": 17}, "T005"),  # the SYN-ACK without its SYN
        (("container",), {"start": 22}, "T005"),  # no handshake at all
        (("host", "container"), {"snap": 54}, "T005"),  # SYNs without their MSS option
        (("container",), {"stop": 23}, "H001"),  # stopped while the download hangs
    ],
    ids=["synack-only", "midstream", "snap-54", "stopped-in-the-hang"],
)
def test_wireshark_agrees_with_the_cut_captures_evidence(tmp_path, roles, cut, code):
    """The findings only cut captures raise (tests/test_lab_truncated.py), frame by frame."""
    result = pcapmtu.analyze(**_cut(tmp_path, "blackhole_http_large", roles, **cut))
    assert code in {f.code for f in result.findings_list}
    rows = result.wireshark().rows
    assert code in set(rows["code"])
    bad = rows[rows["status"] != "agree"]
    assert bad.empty, bad[["code", "capture", "frame", "why"]].to_string()


def test_an_interface_copy_written_behind_the_next_packet_is_checked_against_its_twin(tmp_path):
    """`tcpdump -i any` on two CPUs: the container's pure ACK (frame 14) is copied on docker0 after its next
    packet (the GET, 16) was already written on the veth. Wireshark's TCP analysis flags nothing on that copy
    (its sequence is behind, it carries no data); the frame it repeats, asked alongside, holds the same
    packet, and that is what the check compares."""
    from support.cuts import frames_of

    d = SAMPLES / "sll_v1"
    frames = frames_of(d / "host.pcap")
    host = frames.moved(14, after=16).write(tmp_path / "host.pcap")
    result = pcapmtu.analyze(host=host, container=d / "container.pcap")
    copy = next(f for f in result.findings_list if f.code == "Q004")
    assert 16 in copy.frames  # the moved ACK, now frame 16, is still known for a copy (of frame 13)
    rows = result.wireshark().rows
    row = rows[(rows["code"] == "Q004") & (rows["frame"] == 16)].iloc[0]
    assert "tcp.analysis" not in row["wireshark"]  # Wireshark's analysis alone would not confirm it
    assert row["status"] == "agree", row["why"]
    assert row["claim"].startswith("a repeat of a packet already captured (cooked -i any capture): frame 13")
    bad = rows[rows["status"] != "agree"]
    assert bad.empty, bad[["code", "capture", "frame", "why"]].to_string()


def test_a_frame_called_a_copy_that_repeats_nothing_is_flagged(tmp_path):
    d = SAMPLES / "sll_v1"
    result = pcapmtu.analyze(host=d / "host.pcap", container=d / "container.pcap")
    copy = next(f for f in result.findings_list if f.code == "Q004")
    assert 13 not in copy.frames  # the ACK's first appearance, on the veth
    wrong = dataclasses.replace(copy, frames=(13,))
    rows = dataclasses.replace(result, findings_list=[wrong]).wireshark().rows
    assert rows["status"].tolist() == ["disagree"]
    assert "not flagged as a repeat" in rows["why"].iloc[0]


@pytest.fixture(scope="module")
def tls12():
    d = SAMPLES / "blackhole_tls12"
    return pcapmtu.analyze(host=d / "host.pcap", container=d / "container.pcap")


def _with(result, code: str, **changes):
    """The analysis with one finding of `code` changed: a deliberately wrong claim."""
    found = [f for f in result.findings_list if f.code == code]
    assert found, code
    wrong = dataclasses.replace(found[0], **changes)
    return dataclasses.replace(result, findings_list=[wrong]), wrong


def test_a_wrong_size_claim_is_flagged(tls12):
    b001 = next(f for f in tls12.findings_list if f.code == "B001")
    # "the server's full-size packets never reached the container": say full size were 1000 bytes
    result, _ = _with(tls12, "B001", evidence={**b001.evidence, "server_full": 1000})
    rows = result.wireshark().rows
    big = rows[rows["wireshark"].str.contains(" len 1252 ")]
    assert len(big) == 1 and (big["status"] == "disagree").all(), rows.to_string()
    assert "IP length < 1000" in big["why"].iloc[0] and "IP length 1252" in big["why"].iloc[0]
    assert (rows.loc[~rows.index.isin(big.index), "status"] == "agree").all()


def test_frames_of_the_wrong_kind_and_wrong_numbers_are_flagged(tls12):
    m004 = next(f for f in tls12.findings_list if f.code == "M004")
    s001 = next(f for f in tls12.findings_list if f.code == "S001")
    # M004 names the SYN and SYN-ACK; give it the server's data segments instead, and a wrong MSS for S001's flow
    wrong_m004 = dataclasses.replace(m004, frames=s001.frames[:2])
    t = dataclasses.replace(tls12, findings_list=[wrong_m004])
    rows = t.wireshark().rows
    assert (rows["status"] == "disagree").all()
    assert rows["why"].str.contains("M004 is about SYN, SYN-ACK").all()
    # a frame the capture does not hold
    gone = dataclasses.replace(m004, frames=(99999,))
    rows = dataclasses.replace(tls12, findings_list=[gone]).wireshark().rows
    assert rows["status"].tolist() == ["disagree"] and "no such frame" in rows["why"].iloc[0]


def test_a_wrong_icmp_mtu_and_a_wrong_mss_are_flagged():
    d = SAMPLES / "pmtud_working"
    result = pcapmtu.analyze(host=d / "host.pcap", container=d / "container.pcap")
    m003 = next(f for f in result.findings_list if f.code == "M003")
    m001 = next(f for f in result.findings_list if f.code == "M001" and f.capture == "container")
    wrong = [dataclasses.replace(m003, evidence={**m003.evidence, "mtu": 1400}),
             dataclasses.replace(m001, evidence={**m001.evidence, "mss": 1360})]  # fmt: skip
    rows = dataclasses.replace(result, findings_list=wrong).wireshark().rows
    assert len(rows) == len(m003.frames) + len(m001.frames)
    assert (rows["status"] == "disagree").all()
    assert (
        rows[rows["code"] == "M003"]["why"]
        .str.contains("next-hop MTU 1400, Wireshark: frag-needed MTU 1450")
        .all()
    )
    assert (
        rows[rows["code"] == "M001"]["why"]
        .str.contains("MSS option == 1360, Wireshark: MSS option 1460")
        .all()
    )


def _script(code: str) -> str:
    sample = SAMPLES / "blackhole_tls12"
    return (
        f"{code}\nimport pcapmtu\n"
        f"r = pcapmtu.analyze(host={str(sample / 'host.pcap')!r}, container={str(sample / 'container.pcap')!r})\n"
        "c = r.wireshark()\nprint(c.summary())\nprint(len(c.rows), r.verdict)\n"
    )


def test_without_tshark_on_path_one_line_and_the_analysis_goes_on():
    env = {**os.environ, "PATH": str(Path(sys.executable).parent)}
    assert shutil.which("tshark", path=env["PATH"]) is None
    out = subprocess.run(
        [sys.executable, "-c", _script("")], env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    line, rows = out.stdout.splitlines()
    assert line == "Wireshark check skipped: tshark is not on PATH (install Wireshark's tshark)"
    assert rows == "0 mtu_blackhole"


def test_without_pyshark_one_line_with_the_install_hint():
    block = "import sys; sys.modules['pyshark'] = None  # as if not installed"
    out = subprocess.run([sys.executable, "-c", _script(block)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    line, rows = out.stdout.splitlines()
    assert line == "Wireshark check skipped: pyshark is not installed (pip install 'pcapmtu[deep]')"
    assert rows == "0 mtu_blackhole"


@pytest.fixture
def counted_tshark(tmp_path, monkeypatch):
    """A tshark on PATH that writes down each invocation, then runs the real one."""
    real = shutil.which("tshark")
    log = tmp_path / "calls.log"
    shim = tmp_path / "bin" / "tshark"
    shim.parent.mkdir()
    shim.write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> {log}\nexec {real} "$@"\n')
    shim.chmod(shim.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{shim.parent}{os.pathsep}{os.environ['PATH']}")

    def reads() -> list[str]:
        calls = log.read_text().splitlines() if log.exists() else []
        return [c for c in calls if " -r " in f" {c} "]

    return reads


def test_one_tshark_run_per_capture_and_only_the_evidence_frames(tls12, counted_tshark):
    check = tls12.wireshark()
    runs = counted_tshark()
    roles = set(check.rows["capture"])
    assert len(runs) == check.tshark_runs == len(roles) == 2
    for run in runs:
        assert "frame.number in {" in run and " -n " in f" {run} "  # no name resolution
        asked = run.split("frame.number in {", 1)[1].split("}", 1)[0].split(", ")
        role = "host" if "host.pcap" in run else "container"
        want = set(check.rows.loc[check.rows["capture"] == role, "frame"].astype(int))
        assert {int(x) for x in asked} == want


def test_the_frame_cap_bounds_what_is_asked(tls12, counted_tshark):
    check = wireshark.check(tls12, max_frames=3)
    runs = counted_tshark()
    assert len(runs) == 2
    for run in runs:
        assert len(run.split("frame.number in {", 1)[1].split("}", 1)[0].split(", ")) <= 3
    assert check.frames_asked <= 6 and check.not_asked > 0
    skipped = check.rows[check.rows["status"] == "not asked"]
    assert len(skipped) and (check.rows.loc[check.rows["status"] != "not asked", "status"] == "agree").all()
    assert "not asked (over" in check.summary()


def test_a_tshark_that_fails_on_one_capture_is_a_note_and_the_other_is_still_checked(
    tls12, tmp_path, monkeypatch
):
    real = shutil.which("tshark")
    shim = tmp_path / "bin" / "tshark"
    shim.parent.mkdir()
    shim.write_text(
        "#!/bin/sh\n"
        'case "$*" in *host.pcap*) echo \'Running as user "root" and group "root".\' >&2;'
        " echo 'tshark: The file appears to be damaged or corrupt.' >&2; exit 2;; esac\n"
        f'exec {real} "$@"\n'
    )
    shim.chmod(shim.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{shim.parent}{os.pathsep}{os.environ['PATH']}")
    check = tls12.wireshark()
    assert check.notes == [
        "tshark could not read the host capture: TsharkFailed: tshark exited with 2: "
        "tshark: The file appears to be damaged or corrupt."
    ]
    by_role = check.rows.groupby("capture")["status"].agg(set).to_dict()
    assert by_role == {"host": {"not asked"}, "container": {"agree"}}


def test_inside_a_running_event_loop(tls12):
    """A notebook runs an event loop: the check must not need one of its own (it starts tshark itself)."""

    async def inside():
        return tls12.wireshark()

    for _ in range(3):  # the thread's child watcher must not lose track of tshark, call after call
        check = asyncio.run(inside())
        assert not check.notes and check.frames_asked == 14
        assert len(check.rows) and (check.rows["status"] == "agree").all()


def test_renderings_escape_what_captures_say(tls12):
    check = tls12.wireshark()
    doc = check.to_json()
    assert json.loads(json.dumps(doc))["rows"][0].keys() == set(wireshark.COLUMNS)
    evil = dataclasses.replace(check, rows=check.rows.assign(expert="<script>x</script>|\x1b[31m"))
    html = evil.html()
    assert "<script>" not in html and "&lt;script&gt;" in html and "\x1b" not in html
    md = evil.markdown()
    assert md.startswith("## Wireshark's word") and "\x1b" not in md
    assert "`<script>x</script>\\|" in md  # a code span: shown, never run; the pipe cannot break the row
    assert md.count("\n| ") == len(check.rows) + 1  # the header and one line per row: no pipe broke a row
    from rich.console import Console

    console = Console(record=True, width=200)
    console.print(check.rich_table())
    assert "Wireshark's word on the evidence" in console.export_text()


def test_analyze_wireshark_in_the_terminal_the_report_and_report_json(tmp_path):
    """`pcapmtu analyze --wireshark`: one line in the terminal, a section in report.md and report.html, and
    `wireshark` in report.json, which still validates against its schema."""
    demo = SAMPLES / "blackhole_tls12"
    cmd = [sys.executable, "-m", "pcapmtu", "analyze", str(demo / "host.pcap"), str(demo / "container.pcap")]
    run = subprocess.run(
        [*cmd, "--wireshark", "--out", str(tmp_path)], capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 1, run.stderr
    assert "Wireshark's word: Wireshark checked" in run.stdout and " 0 disagree" in run.stdout, run.stdout
    doc = json.loads((tmp_path / "report.json").read_text())
    validate_or_fail(doc)
    rows = doc["wireshark"]["rows"]
    assert rows and {r["status"] for r in rows} == {"agree"}
    assert {r["code"] for r in rows} >= {"B001", "M003"}
    assert "## Wireshark's word" in (tmp_path / "report.md").read_text()
    assert "<h2>Wireshark's word</h2>" in (tmp_path / "report.html").read_text()
    plain = subprocess.run([*cmd, "--json"], capture_output=True, text=True, timeout=300)
    assert json.loads(plain.stdout)["wireshark"] is None  # not asked: null, and no tshark run
