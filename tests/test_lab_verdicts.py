"""Every lab scenario gets the verdict its truth.json expects; negative controls never get an MTU verdict.

Runs on the committed captures in sample_pcaps/, and also on freshly regenerated ones when
PCAPMTU_LAB_DIR points at a directory `sample_pcaps/lab.py --all --outdir DIR` wrote (CI does this).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import pcapmtu
from support.environment import lab_scenarios

MTU_VERDICTS = {"mtu_blackhole", "mtu_blackhole_recovered"}


def _scenarios() -> list[Path]:
    return lab_scenarios()


@pytest.mark.parametrize("scenario", _scenarios(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_verdict_matches_truth(scenario):
    truth = json.loads((scenario / "truth.json").read_text())
    result = pcapmtu.analyze(host=scenario / "host.pcap", container=scenario / "container.pcap")
    expected = truth["expected_verdict"]
    assert result.verdict == expected, f"{scenario.name}: {result.explanation}"
    if expected == "not_mtu":
        assert result.diagnosis.reason == truth["not_mtu_reason"]
    if expected in MTU_VERDICTS:
        assert result.fix is not None and result.fix.commands, "an MTU verdict comes with the fix"
        assert result.diagnosis.explanation
    else:
        assert result.verdict not in MTU_VERDICTS


def _blackholes() -> list[Path]:
    return [
        d
        for d in _scenarios()
        if json.loads((d / "truth.json").read_text())["expected_verdict"] == "mtu_blackhole"
    ]


@pytest.mark.parametrize("scenario", _blackholes(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_blackhole_numbers(scenario):
    """Where the lab configured the MTUs, the computed path MTU and MSS are the configured ones."""
    truth = json.loads((scenario / "truth.json").read_text())
    result = pcapmtu.analyze(host=scenario / "host.pcap", container=scenario / "container.pcap")
    mtus = truth["config"]["mtus"]
    path_hops = [
        v
        for k, v in mtus.items()
        if isinstance(v, int) and k not in ("container_eth0", "docker0", "vxlan_underlay")
    ]
    true_mtu = min(path_hops)
    ipv = 6 if truth["config"].get("ip_version") == 6 else 4
    path = result.context.path[ipv]
    if result.path_mtu is None:
        # not pinned: the bracket must still hold the truth, and be bounded on at least one side
        assert path.low is not None or path.high is not None, f"{scenario.name}: no size evidence at all"
        assert (path.low or 0) <= true_mtu < (path.high or 1 << 20), f"{scenario.name}: {path}"
        return
    assert result.path_mtu == true_mtu, f"{scenario.name}: {path.decided_by}"
    assert result.diagnosis.recommended_mss == true_mtu - (60 if ipv == 6 else 40)
    assert f"--set-mss {true_mtu - 40}" in " ".join(c["command"] for c in result.fix.commands)
