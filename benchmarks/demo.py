"""Wall time of what an on-call engineer runs on a small incident: `analyze` and `analyze --out` of the demo
(sample_pcaps/blackhole_tls12), this tree's pcapmtu against a baseline, interleaved, median of N.

    python3 benchmarks/demo.py [--runs 11] [--baseline CMD] [--markdown]

CMD runs another pcapmtu (e.g. `env PYTHONPATH=/path/to/old/analyzer python -m pcapmtu`); without it only
this tree's is timed. This tree's is `python -m pcapmtu` from .venv, as CMD would be.
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "sample_pcaps" / "blackhole_tls12"
MODES = {"analyze": [], "analyze --out": ["--out", "{out}", "--force"]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=11)
    ap.add_argument("--baseline", help="command that runs another pcapmtu")
    ap.add_argument("--markdown", action="store_true", help="a Markdown table")
    args = ap.parse_args()
    tools = {"this tree": [str(REPO / ".venv" / "bin" / "python"), "-m", "pcapmtu"]}
    if args.baseline:
        tools["baseline"] = shlex.split(args.baseline)
    times: dict[tuple[str, str], list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="pcapmtu-demo-") as tmp:
        for _ in range(args.runs):  # interleaved: a slow moment of the machine hits every command alike
            for name, argv in tools.items():
                for mode, extra in MODES.items():
                    extra = [a.replace("{out}", f"{tmp}/{name.replace(' ', '-')}") for a in extra]
                    cmd = [*argv, "analyze", str(DEMO / "host.pcap"), str(DEMO / "container.pcap"), *extra]
                    start = time.perf_counter()
                    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
                    times.setdefault((mode, name), []).append(time.perf_counter() - start)
                    if proc.returncode not in (0, 1, 3):
                        sys.exit(f"{shlex.join(cmd)} failed ({proc.returncode}): {proc.stderr[-500:]}")
    rows = [(m, n, statistics.median(t), min(t), max(t)) for (m, n), t in sorted(times.items())]
    if args.markdown:
        print("| command | pcapmtu | median s | min-max s |\n|---|---|---:|---:|")
        for m, n, med, lo, hi in rows:
            print(f"| `{m}` | {n} | {med:.2f} | {lo:.2f}-{hi:.2f} |")
    else:
        for m, n, med, lo, hi in rows:
            print(f"{m:15s} {n:10s} median {med:.2f} s  min-max {lo:.2f}-{hi:.2f} s  ({args.runs} runs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
