"""`pcapmtu analyze --before DIR --after DIR`: did the fix take? Checked on the lab's scenarios, the expected
outcome read from each scenario's truth.json (what curl did, what the incident was), never hard-coded.

The demo incident (blackhole_tls12) is the "before": its container's HTTPS request to jenkins-updates.example
failed. Each other scenario is an "after": the fix took when that same request now succeeded and the incident
is no MTU problem; it did not take when the MTU problem is still there; and pcapmtu cannot tell when the
request was not made again.
"""

from __future__ import annotations

import json
import shutil
from functools import cache
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pcapmtu.cli import app
from pcapmtu.render import verification
from support.environment import SAMPLES

BEFORE = "blackhole_tls12"
SCENARIOS = sorted(p.name for p in SAMPLES.iterdir() if (p / "truth.json").is_file())
EXIT = {"took": 0, "did_not_take": 1, "cannot_tell": 3}


@cache
def doc(scenario: str) -> tuple[dict, str]:
    """The scenario's folder as --before/--after reads it (analysed once per test process)."""
    return verification.load(SAMPLES / scenario)


def truth(scenario: str) -> dict:
    return json.loads((SAMPLES / scenario / "truth.json").read_text())


def _pair_verdict(t: dict) -> str | None:
    """The expected incident verdict for the scenario's host + container pair."""
    return next(
        (a["expected_verdict"] for a in t["analyses"] if set(a["inputs"]) == {"host", "container"}), None
    )


def expected_outcome(before: str, after: str) -> str:
    """From the two truth files: the container request that failed before, and what became of it after."""
    failed = {
        f["url"] for f in truth(before)["flows"] if f["client"] == "container" and f["expected"] == "failed"
    }
    assert failed, f"{before}: no failing request in truth.json"
    t = truth(after)
    again = [f for f in t["flows"] if f["client"] == "container" and f["url"] in failed]
    if not again:
        return "cannot_tell"
    if _pair_verdict(t) in ("mtu_blackhole", "mtu_blackhole_recovered") or any(
        f["expected"] == "failed" for f in again
    ):
        return "did_not_take"
    return "took"


def _pairs_of(scenario: str) -> bool:
    return (SAMPLES / scenario / "host.pcap").is_file() and (SAMPLES / scenario / "container.pcap").is_file()


@pytest.mark.parametrize("after", [s for s in SCENARIOS if _pairs_of(s)])
def test_outcome_matches_the_truth(after):
    (was, was_from), (now, now_from) = doc(BEFORE), doc(after)
    result = verification.compare(was, now, was_from, now_from)
    assert result.outcome == expected_outcome(BEFORE, after), verification.lines(result)


def test_a_clamp_took_with_the_numbers_that_show_it():
    """fixed_clamp_setmss: the host clamps SYN and SYN-ACK to MSS 1410 (truth: its rule); full 1450-byte
    packets now reach the container and the HTTPS request completes."""
    after = truth("fixed_clamp_setmss")
    rule = next(r for r in after["config"]["rules"]["host"] if "TCPMSS" in r)
    mss = int(rule.rsplit(" ", 1)[1])
    mtu = after["config"]["mtus"]["host_uplink"]
    result = verification.compare(doc(BEFORE)[0], doc("fixed_clamp_setmss")[0])
    assert result.outcome == "took" and result.line.startswith("the fix took: ")
    (svc,) = result.services
    before_flow = next(f for f in truth(BEFORE)["facts"]["container"]["flows"] if f["server_port"] == 443)
    assert svc.mss_before == before_flow["mss_client"] and svc.largest_before == before_flow["max_ip_len_s2c"]
    assert (svc.mss_after, svc.largest_after, svc.full_size_after, svc.completes_after) == (
        mss,
        mtu,
        True,
        True,
    )


def test_the_same_captures_twice_did_not_take(tmp_path):
    result = verification.compare(doc(BEFORE)[0], doc(BEFORE)[0])
    assert result.outcome == "did_not_take" and expected_outcome(BEFORE, BEFORE) == "did_not_take"
    (svc,) = result.services
    assert (svc.full_size_after, svc.completes_after, svc.verdicts_after) == (
        False,
        False,
        ("mtu_blackhole",),
    )


def test_a_healthy_before_cannot_tell():
    was = doc("fixed_clamp_setmss")[0]
    result = verification.compare(was, was)
    assert result.outcome == "cannot_tell" and "show no MTU problem" in result.line


def test_reports_compare_like_captures(tmp_path):
    """A report.json (the document --out writes) is read instead of analysed, with the same outcome."""
    report = tmp_path / "incident" / "report.json"
    report.parent.mkdir()
    report.write_text(json.dumps(doc(BEFORE)[0]))
    res = CliRunner().invoke(app, ["analyze", "--before", str(report.parent), "--after",
                                   str(SAMPLES / "fixed_clamp_setmss"), "--json"])  # fmt: skip
    assert res.exit_code == EXIT["took"], res.output
    out = json.loads(res.output)
    assert out["outcome"] == "took" and out["before"]["source"].endswith("report.json (report)")
    assert out["services"][0]["mss_after"] == 1410


def test_cli_prints_the_comparison_and_exits_with_the_outcome(tmp_path):
    """Terminal output and exit code; the folder may use node/pod names (the Kubernetes recipe's files)."""
    pod = tmp_path / "after"
    pod.mkdir()
    shutil.copy(SAMPLES / BEFORE / "host.pcap", pod / "node.pcap")
    shutil.copy(SAMPLES / BEFORE / "container.pcap", pod / "pod.pcap")
    report = tmp_path / "report.json"
    report.write_text(json.dumps(doc(BEFORE)[0]))
    res = CliRunner().invoke(app, ["analyze", "--before", str(report), "--after", str(pod)])
    assert res.exit_code == EXIT["did_not_take"], res.output
    lines = res.output.strip().splitlines()
    assert "node.pcap, pod.pcap (analysed)" in lines[1]
    assert lines[-1].startswith("the fix did not take: jenkins-updates.example (198.18.0.11:443) still fails")
    assert "  SYN MSS in effect:       1460 -> 1460" in lines


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--before", "X"], "--before and --after go together"),
        (["--before", "{s}", "--after", "{s}", "{s}/host.pcap"], "give no other capture"),
        (["--before", "{tmp}", "--after", "{s}"], "holds neither captures"),
        (["--before", "{tmp}/missing", "--after", "{s}"], "no such file or folder"),
        (["--before", "{tmp}/bad.json", "--after", "{s}"], "not a readable report.json"),
        (["--before", "{tmp}/other.json", "--after", "{s}"], "not a pcapmtu report.json"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, message):
    (tmp_path / "bad.json").write_text("{")
    (tmp_path / "other.json").write_text('{"a": 1}')
    argv = [a.format(s=SAMPLES / BEFORE, tmp=tmp_path) for a in args]
    res = CliRunner().invoke(app, ["analyze", *argv])
    assert res.exit_code == 2, res.output
    assert message in res.output and "Traceback" not in res.output


def test_verification_document_is_documented():
    """Every key the --json document has is in docs/verification.md."""
    was = doc(BEFORE)[0]
    out = verification.compare(was, was).to_json()
    page = (Path(__file__).resolve().parents[1] / "docs" / "verification.md").read_text()
    for key in [*out, *out["before"], *out["services"][0]]:
        assert f"`{key}`" in page, key


def test_docs_example_is_what_the_command_prints(monkeypatch):
    """docs/verification.md's example, run from the repository as written there."""
    root = Path(__file__).resolve().parents[1]
    page = (root / "docs" / "verification.md").read_text()
    block = page.split(
        "$ pcapmtu analyze --before sample_pcaps/blackhole_tls12 --after sample_pcaps/fixed_clamp_setmss\n"
    )[1]
    expected = block.split("```")[0]
    monkeypatch.chdir(root)
    res = CliRunner().invoke(app, ["analyze", "--before", "sample_pcaps/blackhole_tls12",
                                   "--after", "sample_pcaps/fixed_clamp_setmss"])  # fmt: skip
    assert res.exit_code == 0 and res.output == expected, res.output
