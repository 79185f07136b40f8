"""Every `analyses` entry of every lab scenario: the analyzer, run on those files, concludes what truth.json says.

An entry names the inputs (keyword captures `host`/`container`/`server`, or `captures` whose role the
analyzer works out itself) and the expected conclusion: the verdict (or only "not healthy"), the not_mtu
reason, the path MTU, where each capture was taken (client, server or middle), and for a clock-shifted
host capture the offset between the two captures' clocks. See sample_pcaps/README.md, "truth.json".

Runs on the committed captures in sample_pcaps/, and also on freshly regenerated ones when
PCAPMTU_LAB_DIR points at a directory `sample_pcaps/lab.py --all --outdir DIR` wrote (CI does this).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

import pcapmtu
from support.environment import lab_scenarios

CLOCK_TOLERANCE_S = 0.010
KEYWORD_ROLES = ("host", "container", "server")


def _scenarios() -> list[Path]:
    return lab_scenarios()


def _label(inputs: dict) -> str:
    parts = [f"{role}={inputs[role]}" for role in KEYWORD_ROLES if role in inputs]
    if "captures" in inputs:
        parts.append("captures=" + ",".join(inputs["captures"]))
    return "+".join(parts)


def _entries() -> list:
    params = []
    for scenario in _scenarios():
        truth = json.loads((scenario / "truth.json").read_text())
        for i, entry in enumerate(truth.get("analyses", [])):
            label = f"{scenario.parent.name}/{scenario.name}/{i}:{_label(entry['inputs'])}"
            params.append(pytest.param(scenario, entry, id=label))
    return params


def _roles_by_file(result, inputs: dict) -> dict[str, str]:
    """Capture file name -> the role it has in the result: the keyword for keyword inputs, else by name."""
    roles = {inputs[role]: role for role in KEYWORD_ROLES if role in inputs}
    for file in inputs.get("captures", []):
        found = [role for role, cap in result.captures.items() if str(cap.name).endswith(file)]
        assert len(found) == 1, f"{file}: no single capture of that name among {list(result.captures)}"
        roles[file] = found[0]
    return roles


def _offsets(value) -> list[float]:
    """The clock offsets a result reports: a pairs column (one per matched pair) or a single number."""
    values = value.tolist() if hasattr(value, "tolist") else [value]
    return [float(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]


@pytest.mark.parametrize("scenario", _scenarios(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_scenario_has_the_default_entry(scenario: Path) -> None:
    truth = json.loads((scenario / "truth.json").read_text())
    analyses = truth.get("analyses") or []
    default = [e for e in analyses if e["inputs"] == {"host": "host.pcap", "container": "container.pcap"}]
    assert len(default) == 1, f"{scenario.name}: truth.json has no host+container entry in `analyses`"
    assert default[0]["expected_verdict"] == truth["expected_verdict"]
    assert default[0]["not_mtu_reason"] == truth["not_mtu_reason"]
    for entry in analyses:
        files = [*(entry["inputs"].get(r) for r in KEYWORD_ROLES), *entry["inputs"].get("captures", [])]
        for file in filter(None, files):
            assert (scenario / file).is_file(), f"{scenario.name}: {file} is named but missing"
            assert file in entry["vantage"], f"{scenario.name}: no vantage for {file}"


@pytest.mark.parametrize(("scenario", "entry"), _entries())
def test_analysis_entry(scenario: Path, entry: dict) -> None:
    inputs = entry["inputs"]
    kwargs = {role: scenario / inputs[role] for role in KEYWORD_ROLES if role in inputs}
    if "captures" in inputs:
        kwargs["captures"] = [scenario / file for file in inputs["captures"]]
    result = pcapmtu.analyze(**kwargs)
    what = f"{scenario.name} {_label(inputs)}: {result.verdict} ({result.explanation})"

    expected = entry.get("expected_verdict")
    if expected is not None:
        assert result.verdict == expected, what
        if expected == "not_mtu":
            assert result.diagnosis.reason == entry["not_mtu_reason"], what
    if entry.get("not_healthy"):
        assert result.verdict != "healthy", what
    if entry.get("acceptable_verdicts"):
        assert result.verdict in entry["acceptable_verdicts"], what
    if result.verdict == "healthy" and "healthy_confidence_at_most" in entry:
        assert result.confidence <= entry["healthy_confidence_at_most"], what

    true_mtu = entry.get("path_mtu")
    if true_mtu is not None:
        if entry.get("path_mtu_evident", True):
            assert result.path_mtu == true_mtu, what
        else:  # no capture pins it: leaving it open is right, another number is wrong
            assert result.path_mtu in (None, true_mtu), what

    _cites_only_its_own_server(result)

    roles = _roles_by_file(result, inputs)
    for file, position in entry["vantage"].items():
        role = roles[file]
        assert result.vantage[role].position == position, f"{scenario.name}: {file} ({role})"

    if "clock_offset_s" in entry:
        offsets = _offsets(result.pairs["clock_offset_s"])
        assert offsets, f"{scenario.name}: no clock offset found"
        for offset in offsets:
            assert abs(offset - entry["clock_offset_s"]) <= CLOCK_TOLERANCE_S, f"{scenario.name}: {offsets}"


def _cites_only_its_own_server(result) -> None:
    """An explanation of a connection never cites an ICMP about packets to another server: it would read
    "no ICMP size report came back" and then quote one (the ICMP belonged to a DF ping to a different host)."""
    chosen = result.verdicts[result.verdicts["verdict"] == result.verdict]
    pairs = zip(chosen["capture"], chosen["conn"], strict=True)
    servers = {str(result.context.flow(role, conn)["server_ip"]) for role, conn in pairs}
    for role, cap in result.captures.items():
        sizes = cap.icmp[cap.icmp["kind"].isin(["frag_needed", "packet_too_big"])]
        for frame, target in zip(sizes["frame"], sizes["quoted_dst"].astype(str), strict=True):
            cited = f"{role} frame {frame}"
            if target not in servers:
                assert cited not in result.explanation, (cited, target, result.explanation)
            for f in result.findings_list:
                if f.conn >= 0 and f.code.startswith("B"):
                    server = str(result.context.flow(f.capture, f.conn)["server_ip"])
                    text = f.message + " " + " ".join(map(str, f.evidence.get("because", ())))
                    assert target == server or cited not in text, (f.code, cited, target, text)
