"""Every Wireshark filter pcapmtu prints is one tshark accepts and that selects the evidence it names, and
`tcp.stream eq N` of each finding selects its connection.

An on-call engineer pastes these filters into Wireshark: a filter tshark rejects (Wireshark 4.0 wants commas
between set members) or one that misses the frames it points at sends them the wrong way. Each finding of
every lab scenario, analysed from every vantage its truth.json lists, is checked on the capture it is about.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest

import pcapmtu
from support import tshark
from support.environment import SAMPLES, require_tool

KEYWORDS = ("host", "container", "server")


def _cases() -> list:
    out = []
    for truth in sorted(SAMPLES.glob("*/truth.json")):
        entries = json.loads(truth.read_text()).get("analyses", [])
        for entry in entries:
            inputs = entry["inputs"]
            if "captures" in inputs or not set(inputs) <= set(KEYWORDS):
                continue
            label = "+".join(f"{k}={inputs[k]}" for k in KEYWORDS if k in inputs)
            out.append(pytest.param(truth.parent, inputs, id=f"{truth.parent.name}:{label}"))
    return out


@functools.cache
def _selected(path: Path, display_filter: str) -> tuple[int, frozenset[int], str]:
    run = tshark.run(path, "-Y", display_filter, "-T", "fields", "-e", "frame.number", timeout=120)
    frames = frozenset(int(x) for x in run.stdout.split())
    return run.returncode, frames, run.stderr.strip()


@pytest.mark.parametrize(("scenario", "inputs"), _cases())
def test_every_emitted_filter_is_valid_and_selects_its_evidence(scenario: Path, inputs: dict) -> None:
    require_tool("tshark")
    result = pcapmtu.analyze(**{k: scenario / v for k, v in inputs.items()})
    checked = 0
    for f in result.findings_list:
        if not f.wireshark_filter:
            continue
        path = Path(result.captures[f.capture].path)
        code, frames, err = _selected(path, f.wireshark_filter)
        assert code == 0 and "unexpected" not in err, (
            f"{f.code}: tshark rejects {f.wireshark_filter!r}: {err}"
        )
        assert frames, f"{f.code}: {f.wireshark_filter!r} selects nothing in {path.name}"
        missing = set(f.frames) - frames
        assert not missing, f"{f.code}: {f.wireshark_filter!r} misses its own frames {sorted(missing)}"
        if (
            f.conn >= 0 and f.tcp_stream >= 0
        ):  # a connection's filter holds every packet pcapmtu counts in that connection
            p = result.captures[f.capture].packets
            own = set(p.loc[p["conn"] == f.conn, "frame"].astype(int))
            assert own <= frames or f.code in ("S001", "L001"), (f.code, sorted(own - frames)[:10])
            # ... and `tcp.stream eq N` holds them too, and nothing else but their interface copies
            code, stream, err = _selected(path, f"tcp.stream eq {f.tcp_stream} && !icmp && !icmpv6")
            copies = set(p.loc[p["dup_copy"], "frame"].astype(int))
            assert code == 0 and own <= stream and stream - own <= copies, (f.code, f.tcp_stream, err)
        checked += 1
    assert checked or not any(f.wireshark_filter for f in result.findings_list)
