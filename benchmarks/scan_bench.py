#!/usr/bin/env python3
"""Time `pcapmtu scan` on fleets of captures: 1 and 2 local workers, Dask, and the baseline of one
`pcapmtu analyze` per group (what a fleet took before `scan`), side by side in one run.

    python3 benchmarks/scan_bench.py [--copies 2] [--big-copies 2] [--repeat 1] [--markdown] [--save-json F]

Two fleets, built under benchmarks/work/ (git-ignored):

    scan-lab/   --copies copies of every lab scenario folder of sample_pcaps/ (host, container, server
                captures under their plain names): many small groups, what a CI gate or a node sweep sees
    scan-big/   --big-copies folders each holding the 1M-packet benchmark capture as container.pcap
                (hard links of benchmarks/work/real-1m.pcap; make_capture.py builds it): few big groups

For each fleet, interleaved --repeat times (stdout to /dev/null, the page cache warm):

    baseline    pcapmtu analyze --host H --container C [--server S] --json, one group after the other
    local-1     pcapmtu scan FLEET --workers 1 --jsonl FILE --fail-on none
    local-2     the same with --workers 2
    dask-2      pcapmtu scan FLEET --dask local --workers 2 ...   (a LocalCluster of 2 worker processes)

and, for the fixed costs, local-2 and dask-2 on a fleet of one lab group (`scan-one/`): the Dask overhead
per group is ((dask-2 - local-2) on the fleet - (dask-2 - local-2) on one group) / (groups - 1).
Reported: median wall time (until the last process of the run exits), groups/s and packets/s, CPU time
(user+sys of every process of the run: each command runs under a child subreaper that reaps the pool's
fork server and workers too), the peak RSS of the largest single process (a worker, or the scan itself),
and the load other programs put on the machine meanwhile (busy CPU of /proc/stat minus ours). Every scan's lines are compared with local-1's: a
benchmark of wrong answers is worth nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
WORK = HERE / "work"
sys.path.insert(0, str(HERE))
from bench import busy_cpu_seconds  # noqa: E402

PCAPMTU = REPO / ".venv" / "bin" / "pcapmtu"
ROLES = ("host", "container", "server")
BIG = WORK / "real-1m.pcap"


PR_SET_CHILD_SUBREAPER = 36  # prctl(2): orphaned descendants are reparented to us, and reaped by us


def _reap(argv: list[str]) -> None:
    """Hidden mode: run argv as a child subreaper; once every descendant has exited (the pool's fork server
    and its workers are not the scan's children, and outlive it by a moment), write {"wall", "maxrss_kib",
    "user", "sys", "rc"} of the whole process tree as JSON to OUT."""
    import ctypes
    import resource
    import subprocess
    import time

    out, cmd = argv[0], argv[2:]  # [OUT, "--", cmd...]
    if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        sys.exit("prctl(PR_SET_CHILD_SUBREAPER) failed: the workers' CPU and memory would not be counted")
    t0 = time.perf_counter()
    main = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    rc = None
    while True:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        if pid == main.pid:
            rc = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t0
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)  # every descendant: each was reaped by us or below us
    Path(out).write_text(
        json.dumps(
            {"wall": wall, "maxrss_kib": ru.ru_maxrss, "user": ru.ru_utime, "sys": ru.ru_stime, "rc": rc}
        )
    )


def measure(cmd: list[str], timeout: float) -> dict:
    """One run of `cmd` with its whole process tree counted: wall until the last process exits, CPU of every
    process, the peak RSS of the largest one; and the cores other programs kept busy meanwhile."""
    import subprocess
    import tempfile

    fd, tmp = tempfile.mkstemp(prefix="pmb-scan-", suffix=".json")
    os.close(fd)
    try:
        busy0 = busy_cpu_seconds()
        try:
            subprocess.run([sys.executable, __file__, "_reap", tmp, "--", *cmd], timeout=timeout, check=True)
        except (subprocess.TimeoutExpired, subprocess.CalledProcessError) as exc:
            return {"error": str(exc)}
        busy1 = busy_cpu_seconds()
        res = json.loads(Path(tmp).read_text())
        if busy0 is not None and busy1 is not None and res["wall"] > 0:
            res["other_load"] = max(0.0, (busy1 - busy0) - res["user"] - res["sys"]) / res["wall"]
        return res
    finally:
        Path(tmp).unlink(missing_ok=True)


def lab_fleet(dest: Path, copies: int, scenarios: int | None = None) -> list[dict[str, Path]]:
    """`copies` copies of every lab scenario folder (or of the first `scenarios`), its plain role files;
    the groups, role -> file."""
    shutil.rmtree(dest, ignore_errors=True)
    groups = []
    for n in range(copies):
        for scenario in sorted(p.parent for p in (REPO / "sample_pcaps").glob("*/truth.json"))[:scenarios]:
            folder = dest / f"copy{n}" / scenario.name
            folder.mkdir(parents=True)
            group = {}
            for role in ROLES:
                if (scenario / f"{role}.pcap").exists():
                    shutil.copy(scenario / f"{role}.pcap", folder / f"{role}.pcap")
                    group[role] = folder / f"{role}.pcap"
            groups.append(group)
    return groups


def big_fleet(dest: Path, copies: int) -> list[dict[str, Path]]:
    if not BIG.exists():
        sys.exit(f"{BIG} is missing: sudo python3 benchmarks/make_capture.py builds it")
    shutil.rmtree(dest, ignore_errors=True)
    groups = []
    for n in range(copies):
        (dest / f"node{n}").mkdir(parents=True)
        os.link(BIG, dest / f"node{n}" / "container.pcap")  # another path, the same bytes: another group
        groups.append({"container": dest / f"node{n}" / "container.pcap"})
    return groups


def baseline_script(groups: list[dict[str, Path]], path: Path) -> list[str]:
    """One `pcapmtu analyze` per group, in a row: the shell loop a fleet needed before `scan`."""
    lines = ["set -u"]
    for g in groups:
        args = " ".join(f"--{role} {g[role]}" for role in ROLES if role in g)
        lines.append(f"{PCAPMTU} analyze {args} --json > /dev/null || test $? -le 3  # 1, 3: a verdict")
    path.write_text("\n".join(lines) + "\n")
    return ["sh", "-e", str(path)]


def scan_cmd(fleet: Path, lines: Path, *engine: str) -> list[str]:
    return [str(PCAPMTU), "scan", str(fleet), "--jsonl", str(lines), "--fail-on", "none", "-q", *engine]


ENGINES = {
    "local-1": ("--workers", "1"),
    "local-2": ("--workers", "2"),
    "dask-2": ("--dask", "local", "--workers", "2"),
}


def comparable(path: Path) -> list[dict]:
    return sorted((json.loads(x) for x in path.read_text().splitlines()), key=lambda line: line["group"])


def run_fleet(name: str, fleet: Path, groups: list[dict[str, Path]], repeat: int, baseline: bool) -> dict:
    runs: dict[str, list[dict]] = {}
    commands = {k: scan_cmd(fleet, WORK / f"{name}-{k}.jsonl", *v) for k, v in ENGINES.items()}
    if baseline:
        commands = {"baseline": baseline_script(groups, WORK / f"{name}-baseline.sh"), **commands}
    for _ in range(repeat):
        for label, cmd in commands.items():
            print(f"{name}: {label} ...", file=sys.stderr, flush=True)
            result = measure(cmd, timeout=3600)
            if "error" in result or result.get("rc") not in (0, None):
                sys.exit(f"{name} {label} failed: {result}")
            runs.setdefault(label, []).append(result)
    reference = comparable(WORK / f"{name}-local-1.jsonl")
    for label in ENGINES:
        got = comparable(WORK / f"{name}-{label}.jsonl")
        if got != reference:
            sys.exit(f"{name}: {label} gave other lines than local-1")
    packets = sum(f["packets"] or 0 for line in reference for f in line["files"])
    errors = [line["name"] for line in reference if line["status"] != "ok"]
    if errors:
        sys.exit(f"{name}: groups failed: {errors}")
    summary = {}
    for label, results in runs.items():
        wall = statistics.median(r["wall"] for r in results)
        summary[label] = {
            "wall_s": wall,
            "cpu_s": statistics.median(r["user"] + r["sys"] for r in results),
            "peak_rss_mib": max(r["maxrss_kib"] for r in results) / 1024,
            "groups_per_s": len(groups) / wall,
            "packets_per_s": packets / wall,
            "other_load": statistics.median(r.get("other_load", 0.0) for r in results),
        }
    return {
        "groups": len(groups),
        "captures": sum(len(g) for g in groups),
        "packets": packets,
        "runs": summary,
    }


def markdown(report: dict) -> str:
    out = []
    for name, fleet in report["fleets"].items():
        out.append(
            f"\n**{name}**: {fleet['groups']} groups, {fleet['captures']} captures, {fleet['packets']:,} packets\n"
        )
        out.append(
            "| run | wall (s) | groups/s | packets/s | CPU (s) | peak RSS of one process (MiB) | speed-up vs local-1 | other load (cores) |"
        )
        out.append("|---|---|---|---|---|---|---|---|")
        one = fleet["runs"]["local-1"]["wall_s"]
        for label, r in fleet["runs"].items():
            out.append(
                f"| {label} | {r['wall_s']:.1f} | {r['groups_per_s']:.2f} | {r['packets_per_s']:,.0f} | "
                f"{r['cpu_s']:.1f} | {r['peak_rss_mib']:.0f} | {one / r['wall_s']:.2f} | {r['other_load']:.2f} |"
            )
    if "dask_overhead_per_group_s" in report:
        out.append(
            f"\nDask overhead per group (dask-2 - local-2, fixed costs taken out): "
            f"{report['dask_overhead_per_group_s'] * 1000:.0f} ms; fixed: "
            f"{report['dask_fixed_s']:.1f} s (dask-2 on one group) vs {report['local_fixed_s']:.1f} s (local-2)"
        )
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--copies", type=int, default=2, help="copies of the lab scenarios (default 2)")
    ap.add_argument("--big-copies", type=int, default=2, help="copies of the 1M-packet capture (0: skip)")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--save-json", type=Path)
    args = ap.parse_args()
    WORK.mkdir(exist_ok=True)
    report: dict = {"fleets": {}}
    lab = lab_fleet(WORK / "scan-lab", args.copies)
    report["fleets"]["lab"] = run_fleet("lab", WORK / "scan-lab", lab, args.repeat, baseline=True)
    one = lab_fleet(WORK / "scan-one", 1, scenarios=1)
    fixed = run_fleet("one", WORK / "scan-one", one, args.repeat, baseline=False)
    if args.big_copies:
        big = big_fleet(WORK / "scan-big", args.big_copies)
        report["fleets"]["big"] = run_fleet("big", WORK / "scan-big", big, args.repeat, baseline=True)
    runs = report["fleets"]["lab"]["runs"]
    report["local_fixed_s"] = fixed["runs"]["local-2"]["wall_s"]
    report["dask_fixed_s"] = fixed["runs"]["dask-2"]["wall_s"]
    extra = (runs["dask-2"]["wall_s"] - runs["local-2"]["wall_s"]) - (
        report["dask_fixed_s"] - report["local_fixed_s"]
    )
    report["dask_overhead_per_group_s"] = extra / max(report["fleets"]["lab"]["groups"] - 1, 1)
    if args.save_json:
        args.save_json.write_text(json.dumps(report, indent=2))
    print(markdown(report) if args.markdown else json.dumps(report, indent=2))


if __name__ == "__main__":
    if sys.argv[1:2] == ["_reap"]:
        _reap(sys.argv[2:])
    else:
        main()
