"""Fleets of lab captures for the scan tests: scenario folders copied as a DaemonSet would leave them, and
what each group must conclude, read from the scenario's truth.json (never written in a test); and a job
whose worker dies, for the local engine (here, not in a test module: the worker imports it by name)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from support.environment import SAMPLES

ROLE_FILES = {"host": "host.pcap", "container": "container.pcap", "server": "server.pcap"}


def truth(scenario: str) -> dict:
    return json.loads((SAMPLES / scenario / "truth.json").read_text())


def fullest_analysis(scenario: str) -> dict:
    """The analysis of truth.json over the most of the scenario's own captures by role (host, container,
    server under their plain names): what a folder of those files, grouped by names, must conclude."""
    plain = [
        a
        for a in truth(scenario)["analyses"]
        if a["expected_verdict"] and all(ROLE_FILES.get(role) == f for role, f in a["inputs"].items())
    ]
    return max(plain, key=lambda a: len(a["inputs"]))


def pair_analysis(scenario: str) -> dict:
    """truth.json's analysis of the host and container captures together."""
    pair = {"host": "host.pcap", "container": "container.pcap"}
    return next(a for a in truth(scenario)["analyses"] if a["inputs"] == pair)


def folder_fleet(dest: Path, scenarios: list[str]) -> dict[str, dict]:
    """dest/<scenario>/{host,container,server}.pcap as its fullest analysis names them; scenario -> that
    analysis (its expected verdict, reason, path MTU)."""
    expected = {}
    for scenario in scenarios:
        analysis = fullest_analysis(scenario)
        (dest / scenario).mkdir(parents=True)
        for name in analysis["inputs"].values():
            shutil.copy(SAMPLES / scenario / name, dest / scenario / name)
        expected[scenario] = analysis
    return expected


def flat_fleet(dest: Path, scenarios: list[str]) -> dict[str, dict]:
    """One directory of node-named files (`<scenario>-a.pcap` = its host capture, `-b` its container's): no
    naming convention applies, so only connection pairing can put each pair together."""
    dest.mkdir(parents=True, exist_ok=True)
    expected = {}
    for scenario in scenarios:
        shutil.copy(SAMPLES / scenario / "host.pcap", dest / f"{scenario}-a.pcap")
        shutil.copy(SAMPLES / scenario / "container.pcap", dest / f"{scenario}-b.pcap")
        expected[scenario] = pair_analysis(scenario)
    return expected


def by_scenario(lines: list[dict]) -> dict[str, dict]:
    """Lines keyed by the scenario their files come from (the folder's name, or the flat file's prefix)."""
    out = {}
    for line in lines:
        path = Path(line["files"][0]["path"])
        key = path.parent.name if line["grouped_by"] == "names" else path.stem.rsplit("-", 1)[0]
        out[key] = line
    return out


def comparable(lines: list[dict]) -> list[dict]:
    """Lines in group order: two runs over the same files must give equal lists."""
    return sorted(lines, key=lambda line: line["group"])


def die_on_two(n: int) -> int:
    """A job whose worker the OS kills, for n == 2."""
    if n == 2:
        os._exit(9)
    return n * 10
