#!/usr/bin/env python3
"""Time pcapmtu against tshark and tcptrace on one capture: wall time, packets/s, peak RSS.

    python3 benchmarks/bench.py [CAPTURE] [--repeat 3] [--scale] [--markdown | --json]

Without CAPTURE it uses benchmarks/work/real-1m.pcap, building it first with make_capture.py when it is
missing and we are root. The file is read once to warm the page cache, then every tool runs --repeat
times, interleaved (pcapmtu, tshark, tcptrace, pcapmtu, ...), stdout to /dev/null:

    pcapmtu inspect --json FILE
    tshark -r FILE -T fields -e frame.time_epoch -e ip.src -e ip.dst -e tcp.srcport -e tcp.dstport
           -e tcp.len -e tcp.options.mss_val -e tcp.analysis.retransmission
    tcptrace -l FILE

(--tools tshark-noreasm adds tshark with ``-o tcp.desegment_tcp_streams:FALSE``: without TCP reassembly.)
Reported per tool: median wall time (with min and max), packets/s (records counted by walking the
pcap/pcapng record headers ourselves, divided by the median wall time), CPU time (user+sys, median),
peak RSS (the largest maximum resident set size of the tool's process over the repetitions, from GNU
``/usr/bin/time -f %M`` or, without it, ``getrusage(RUSAGE_CHILDREN)`` in a fresh wrapper process), and
peak RSS bytes per packet. Ratios: pcapmtu/tcptrace and tshark/pcapmtu, for time and memory.

--scale also runs the tools on a prefix of the capture (first 25 % of the records, written by this script)
and compares RSS per packet, to show whether memory grows with the file size.
A tool that is not installed is skipped with a note.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import mmap
import os
import platform
import resource
import shlex
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
WORK = HERE / "work"
DEFAULT_CAPTURE = WORK / "real-1m.pcap"
GNU_TIME = "/usr/bin/time"
TOOLS = ("pcapmtu", "tshark", "tcptrace")
# Optional extra: tshark without TCP reassembly. By default tshark's HTTP dissector reassembles every
# response body (tens of MB for a bulk download), which dominates its time and memory on such captures.
# pcapmtu-pure: pcapmtu with its C core switched off (PCAPMTU_PURE=1), the numpy baseline, side by side.
# pcapmtu-baseline: another pcapmtu (--baseline CMD, e.g. an install of the last release), side by side.
# pcapmtu-analyze: `analyze --json` of the capture as the only one (placed by its vantage point), and
# pcapmtu-report: the same with `--out DIR` (report.html, report.md, report.json, plots), what a user waits for.
# pcapmtu-pair: `analyze --json CAPTURE CAPTURE`, the capture as the host's and as the container's: every
# connection is paired with its twin, the pairing's largest case (pcapmtu-baseline-pair: the baseline's).
# pcapmtu-baseline-analyze, pcapmtu-baseline-report: the baseline's `analyze --json` and `--out DIR`.
EXTRA_TOOLS = (
    *("tshark-noreasm", "pcapmtu-pure", "pcapmtu-baseline", "pcapmtu-analyze", "pcapmtu-report"),
    *("pcapmtu-pair", "pcapmtu-baseline-pair", "pcapmtu-baseline-analyze", "pcapmtu-baseline-report"),
)
REPORT_DIR = WORK / "bench-report"
TSHARK_FIELDS = [
    "frame.time_epoch",
    "ip.src",
    "ip.dst",
    "tcp.srcport",
    "tcp.dstport",
    "tcp.len",
    "tcp.options.mss_val",
    "tcp.analysis.retransmission",
]
# inspect exits 0; analyze exits 1 or 3 when it found a problem in the capture (docs/cli.md): still a run.
OK_CODES = {"pcapmtu": {0, 1, 3}, "tshark": {0}, "tcptrace": {0}, "tshark-noreasm": {0}, "pcapmtu-pure": {0, 1, 3},
            "pcapmtu-baseline": {0, 1, 3}, "pcapmtu-analyze": {0, 1, 3}, "pcapmtu-report": {0, 1, 3},
            "pcapmtu-pair": {0, 1, 3}, "pcapmtu-baseline-pair": {0, 1, 3},
            "pcapmtu-baseline-analyze": {0, 1, 3}, "pcapmtu-baseline-report": {0, 1, 3}}  # fmt: skip
# (label, key, numerator tool, denominator tool) of the ratios printed; a ratio needs both tools' runs
RATIOS = (
    ("pcapmtu / tcptrace", "pcapmtu_over_tcptrace", "pcapmtu", "tcptrace"),
    ("tshark / pcapmtu", "tshark_over_pcapmtu", "tshark", "pcapmtu"),
    ("pcapmtu-pure / pcapmtu", "pure_over_pcapmtu", "pcapmtu-pure", "pcapmtu"),
    ("pcapmtu-baseline / pcapmtu", "baseline_over_pcapmtu", "pcapmtu-baseline", "pcapmtu"),
    ("pcapmtu-analyze / pcapmtu", "analyze_over_inspect", "pcapmtu-analyze", "pcapmtu"),
    ("pcapmtu-report / pcapmtu-analyze", "report_over_analyze", "pcapmtu-report", "pcapmtu-analyze"),
    ("pcapmtu-pair / pcapmtu-analyze", "pair_over_analyze", "pcapmtu-pair", "pcapmtu-analyze"),
    ("pcapmtu-baseline-pair / pcapmtu-pair", "baseline_over_pair", "pcapmtu-baseline-pair", "pcapmtu-pair"),
    (
        "pcapmtu-baseline-analyze / pcapmtu-analyze",
        "baseline_over_analyze",
        "pcapmtu-baseline-analyze",
        "pcapmtu-analyze",
    ),
    (
        "pcapmtu-baseline-report / pcapmtu-report",
        "baseline_over_report",
        "pcapmtu-baseline-report",
        "pcapmtu-report",
    ),
)


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------------
# Capture walking: count records, find the byte offset where record k ends
# --------------------------------------------------------------------------------------------------

PCAP_MAGICS = {
    b"\xd4\xc3\xb2\xa1": ("<", 16),
    b"\xa1\xb2\xc3\xd4": (">", 16),
    b"\x4d\x3c\xb2\xa1": ("<", 16),
    b"\xa1\xb2\x3c\x4d": (">", 16),
    b"\x34\xcd\xb2\xa1": ("<", 24),  # "modified" pcap with 24-byte record headers
    b"\xa1\xb2\xcd\x34": (">", 24),
}
PCAPNG_PACKET_BLOCKS = {2, 3, 6}  # obsolete Packet Block, Simple Packet Block, Enhanced Packet Block


class CaptureError(Exception):
    pass


def walk_capture(path: Path, stop_after: int | None = None) -> tuple[str, int, int]:
    """Return (format, records, end offset of the last record counted); stop after `stop_after` records."""
    size = path.stat().st_size
    if size < 24:
        raise CaptureError(f"{path}: too short to be a capture")
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
        magic = m[:4]
        n, off = 0, 0
        if magic in PCAP_MAGICS:
            endian, rec_hdr = PCAP_MAGICS[magic]
            unpack = struct.Struct(endian + "I").unpack_from
            off = 24
            while off + rec_hdr <= size and (stop_after is None or n < stop_after):
                caplen = unpack(m, off + 8)[0]
                nxt = off + rec_hdr + caplen
                if nxt > size:  # truncated last record: not counted
                    break
                n, off = n + 1, nxt
            return "pcap", n, off
        if magic == b"\x0a\x0d\x0d\x0a":
            endian = "<"
            while off + 12 <= size and (stop_after is None or n < stop_after):
                if m[off : off + 4] == b"\x0a\x0d\x0d\x0a":
                    endian = "<" if m[off + 8 : off + 12] == b"\x4d\x3c\x2b\x1a" else ">"
                btype, blen = struct.unpack_from(endian + "II", m, off)
                if blen < 12 or blen % 4 or off + blen > size:
                    break
                if btype in PCAPNG_PACKET_BLOCKS:
                    n += 1
                off += blen
            return "pcapng", n, off
    raise CaptureError(f"{path}: not an uncompressed pcap or pcapng file (magic {magic.hex()})")


def count_packets(path: Path) -> tuple[str, int]:
    try:
        fmt, n, _ = walk_capture(path)
        return fmt, n
    except CaptureError:
        if not shutil.which("capinfos"):
            raise
        r = subprocess.run(["capinfos", "-c", "-M", "-T", "-r", str(path)], capture_output=True, text=True)
        if r.returncode != 0:
            raise
        return "other (capinfos)", int(r.stdout.split()[-1])


def write_prefix(src: Path, fraction: float, total: int) -> tuple[Path, int]:
    """Write the first `fraction` of src's records to work/ (header + records copied byte for byte)."""
    k = max(1, int(total * fraction))
    WORK.mkdir(parents=True, exist_ok=True)
    dst = WORK / f"{src.stem}.first{round(fraction * 100)}pct{src.suffix}"
    fmt, n, end = walk_capture(src, stop_after=k)
    if not (dst.exists() and dst.stat().st_size == end and dst.stat().st_mtime >= src.stat().st_mtime):
        log(f"writing prefix {dst} ({n:,} records, {end:,} bytes)")
        tmp = dst.with_name(dst.name + ".part")
        with open(src, "rb") as fi, open(tmp, "wb") as fo:
            left = end
            while left:
                chunk = fi.read(min(left, 8 << 20))
                if not chunk:
                    break
                fo.write(chunk)
                left -= len(chunk)
        os.replace(tmp, dst)
    return dst, n


def warm_cache(path: Path) -> float:
    t0 = time.perf_counter()
    with open(path, "rb", buffering=0) as f:
        while f.read(8 << 20):
            pass
    return time.perf_counter() - t0


# --------------------------------------------------------------------------------------------------
# Measuring one run
# --------------------------------------------------------------------------------------------------


def _rusage_wrapper(argv: list[str]) -> int:
    """Hidden mode: run argv, write {"wall", "maxrss_kib", "user", "sys", "rc"} as JSON to OUT."""
    out_path, cmd = argv[0], argv[2:]  # argv = [OUT, "--", cmd...]
    t0 = time.perf_counter()
    rc = subprocess.run(cmd, stdout=subprocess.DEVNULL, check=False).returncode
    wall = time.perf_counter() - t0
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)  # this fresh process has had only that one child
    Path(out_path).write_text(
        json.dumps(
            {"wall": wall, "maxrss_kib": ru.ru_maxrss, "user": ru.ru_utime, "sys": ru.ru_stime, "rc": rc}
        )
    )
    return 0


def busy_cpu_seconds() -> float | None:
    """CPU seconds spent busy (all CPUs, all processes) since boot, from /proc/stat."""
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = v
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def measure(cmd: list[str], timeout: float) -> dict:
    fd, tmp = tempfile.mkstemp(prefix="pmb-bench-", suffix=".txt")
    os.close(fd)
    try:
        use_time = os.access(GNU_TIME, os.X_OK)
        if use_time:
            full = [GNU_TIME, "-f", "%M %U %S", "-o", tmp, *cmd]
        else:
            full = [sys.executable, str(Path(__file__).resolve()), "_rusage", tmp, "--", *cmd]
        busy0 = busy_cpu_seconds()
        t0 = time.perf_counter()
        try:
            p = subprocess.run(
                full, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired:
            return {"error": f"timed out after {timeout:.0f} s"}
        wall = time.perf_counter() - t0
        busy1 = busy_cpu_seconds()
        stderr_tail = p.stderr.decode(errors="replace").strip().splitlines()[-5:]
        text = Path(tmp).read_text().strip()
        if use_time:
            # GNU time prefixes "Command exited with non-zero status N" when the command failed.
            rc = p.returncode
            try:
                rss, user, sys_ = text.splitlines()[-1].split()
                res = {
                    "wall": wall,
                    "maxrss_kib": int(rss),
                    "user": float(user),
                    "sys": float(sys_),
                    "rc": rc,
                }
            except (IndexError, ValueError):
                return {"error": f"could not run: {' '.join(stderr_tail) or text}", "rc": rc}
        else:
            res = json.loads(text)
        res["stderr_tail"] = stderr_tail
        if busy0 is not None and busy1 is not None and wall > 0:
            # Cores kept busy by everything else on the machine during the run (ours excluded).
            res["other_load"] = max(0.0, (busy1 - busy0) - res["user"] - res["sys"]) / wall
        return res
    finally:
        Path(tmp).unlink(missing_ok=True)


# --------------------------------------------------------------------------------------------------
# Tools
# --------------------------------------------------------------------------------------------------


def _given_command(cmd: str) -> dict:
    """{"argv", "note"} for a command line given as an option: runnable if its program is found."""
    argv = shlex.split(cmd)
    found = bool(argv) and (shutil.which(argv[0]) or os.access(argv[0], os.X_OK))
    return {"argv": argv if found else None, "note": None if found else f"not found: {cmd}"}


def tool_commands(pcapmtu: str | None, baseline: str | None = None) -> dict[str, dict]:
    """name -> {"argv": [...] or None, "note": why not}."""
    tools: dict[str, dict] = {}
    if pcapmtu:
        tools["pcapmtu"] = _given_command(pcapmtu)
    else:
        venv = REPO / ".venv" / "bin" / "pcapmtu"
        if os.access(venv, os.X_OK):
            tools["pcapmtu"] = {"argv": [str(venv)], "note": None}
        else:
            tools["pcapmtu"] = {
                "argv": None,
                "note": f"not installed: {venv.relative_to(REPO)} missing (run `make install`, or --pcapmtu CMD)",
            }
    base = tools["pcapmtu"]["argv"]
    tools["pcapmtu-pure"] = {
        "argv": ["env", "PCAPMTU_PURE=1", *base] if base else None,
        "note": tools["pcapmtu"]["note"],
    }
    tools["pcapmtu-baseline"] = (
        _given_command(baseline) if baseline else {"argv": None, "note": "no --baseline CMD given"}
    )
    for name in ("pcapmtu-analyze", "pcapmtu-report", "pcapmtu-pair"):
        tools[name] = {"argv": base, "note": tools["pcapmtu"]["note"]}
    tools["pcapmtu-baseline-pair"] = dict(tools["pcapmtu-baseline"])
    tools["pcapmtu-baseline-analyze"] = dict(tools["pcapmtu-baseline"])
    tools["pcapmtu-baseline-report"] = dict(tools["pcapmtu-baseline"])
    for name in ("tshark", "tcptrace", "tshark-noreasm"):
        path = shutil.which(name.split("-")[0])
        tools[name] = {
            "argv": [path] if path else None,
            "note": None if path else f"not installed (apt-get install -y {name.split('-')[0]})",
        }
    return tools


def warm_bytecode(tools: dict[str, dict]) -> None:
    """Run pcapmtu once on a small capture with bytecode writing allowed, untimed.

    A regular install has every module compiled; an editable one writes the bytecode on its first run,
    unless PYTHONDONTWRITEBYTECODE is set (as in some sandboxes), when every run compiles pcapmtu's
    modules again. The timed runs should measure the installed tool, not the compiler.
    """
    sample = REPO / "sample_pcaps" / "blackhole_tls12" / "container.pcap"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    for name in ("pcapmtu", "pcapmtu-baseline"):
        argv = tools.get(name, {}).get("argv")
        if argv and sample.exists():
            subprocess.run(
                [*argv, "inspect", "--json", str(sample)], env=env, capture_output=True, check=False
            )
            log(f"{name} ran once untimed, so its bytecode is compiled as in a regular install")


def command_for(name: str, base: list[str], capture: Path) -> list[str]:
    if name in ("pcapmtu-analyze", "pcapmtu-baseline-analyze"):
        return [*base, "analyze", "--json", "--capture", str(capture)]
    if name in ("pcapmtu-pair", "pcapmtu-baseline-pair"):
        return [*base, "analyze", "--json", str(capture), str(capture)]
    if name in ("pcapmtu-report", "pcapmtu-baseline-report"):
        return [*base, "analyze", "--quiet", "--force", "--out", str(REPORT_DIR), "--capture", str(capture)]
    if name.startswith("pcapmtu"):
        return [*base, "inspect", "--json", str(capture)]
    if name.startswith("tshark"):
        reasm = ["-o", "tcp.desegment_tcp_streams:FALSE"] if name == "tshark-noreasm" else []
        return [
            *base,
            *reasm,
            "-r",
            str(capture),
            "-T",
            "fields",
            *[x for f in TSHARK_FIELDS for x in ("-e", f)],
        ]
    return [*base, "-l", str(capture)]


def tool_version(name: str, base: list[str] | None) -> str | None:
    if not base:
        return None
    args = {"tshark": ["--version"], "tcptrace": ["-v"], "pcapmtu": ["--version"]}[name.split("-")[0]]
    try:
        r = subprocess.run([*base, *args], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = (r.stdout + r.stderr).strip().splitlines()
    lines = [ln for ln in lines if ln.strip() and "Running as user" not in ln]
    return lines[0].strip() if lines and r.returncode == 0 else None


def summarize(runs: list[dict], packets: int) -> dict:
    good = [r for r in runs if "error" not in r]
    if not good:
        return {"error": runs[-1].get("error", "failed") if runs else "not run"}
    walls = [r["wall"] for r in good]
    med = statistics.median(walls)
    rss = max(r["maxrss_kib"] for r in good) * 1024
    return {
        "wall_median_s": med,
        "wall_min_s": min(walls),
        "wall_max_s": max(walls),
        "cpu_median_s": statistics.median(r["user"] + r["sys"] for r in good),
        "packets_per_s": packets / med if med > 0 else None,
        "peak_rss_bytes": rss,
        "rss_bytes_per_packet": rss / packets if packets else None,
        "exit_codes": sorted({r["rc"] for r in good}),
        "other_load_max": max((r.get("other_load", 0.0) for r in good), default=None),
        "runs": len(good),
    }


def run_suite(
    tools: dict, names: list[str], capture: Path, packets: int, repeat: int, timeout: float
) -> dict:
    runs: dict[str, list[dict]] = {n: [] for n in names}
    failed: dict[str, str] = {}
    for i in range(repeat):
        for name in names:
            if name in failed:
                continue
            cmd = command_for(name, tools[name]["argv"], capture)
            r = measure(cmd, timeout)
            if "error" not in r and r["rc"] not in OK_CODES[name]:
                r = {"error": f"exit code {r['rc']}: {' | '.join(r.get('stderr_tail', []))}", "rc": r["rc"]}
            if "error" in r:
                failed[name] = r["error"]
                log(f"  {name} #{i + 1}: FAILED: {r['error']}")
            else:
                log(f"  {name} #{i + 1}: {r['wall']:.2f} s, {r['maxrss_kib'] / 1024:.0f} MiB, rc {r['rc']}")
            runs[name].append(r)
    out = {}
    for name in names:
        out[name] = summarize(runs[name], packets) if name not in failed else {"error": failed[name]}
        out[name]["command"] = shlex.join(command_for(name, tools[name]["argv"], capture))
        out[name]["raw_runs"] = [{k: v for k, v in r.items() if k != "stderr_tail"} for r in runs[name]]
    return out


def ratio(a: dict, b: dict, key: str) -> float | None:
    if "error" in a or "error" in b or not a.get(key) or not b.get(key):
        return None
    return a[key] / b[key]


def ratios(a: dict, b: dict) -> dict:
    return {
        "time": ratio(a, b, "wall_median_s"),
        "cpu": ratio(a, b, "cpu_median_s"),
        "rss": ratio(a, b, "peak_rss_bytes"),
        **paired(a, b),
    }


def paired(a: dict, b: dict) -> dict:
    """The wall-time ratio of the two tools' runs in the same round (run_suite runs each round's tools one
    after the other): a machine whose speed drifts over minutes moves both runs of a round alike, where the
    ratio of the two medians takes them from different moments. Median, lowest and highest over rounds."""
    runs_a, runs_b = a.get("raw_runs") or [], b.get("raw_runs") or []
    if "error" in a or "error" in b or not runs_a or len(runs_a) != len(runs_b):
        return {}
    each = [x["wall"] / y["wall"] for x, y in zip(runs_a, runs_b, strict=True) if y.get("wall")]
    if not each:
        return {}
    return {
        "time_per_round": statistics.median(each),
        "time_per_round_min": min(each),
        "time_per_round_max": max(each),
    }


def machine_info() -> dict:
    mem = ""
    with contextlib.suppress(OSError):
        mem = subprocess.run(["free", "-g"], capture_output=True, text=True).stdout.strip()
    cpu = ""
    try:
        for ln in Path("/proc/cpuinfo").read_text().splitlines():
            if ln.startswith("model name"):
                cpu = ln.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "free_g": mem,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "rss_source": "/usr/bin/time -f %M" if os.access(GNU_TIME, os.X_OK) else "getrusage(RUSAGE_CHILDREN)",
    }


# --------------------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------------------


def _fmt(v, spec: str, missing: str = "-") -> str:
    return missing if v is None else format(v, spec)


def rows_for(results: dict, packets: int) -> list[list[str]]:
    rows = []
    for name, r in results.items():
        if "skipped" in r:
            rows.append([name, "-", "-", "-", "-", "-", "-", f"skipped: {r['skipped']}"])
        elif "error" in r:
            err = r["error"] if len(r["error"]) <= 90 else r["error"][:87] + "..."
            rows.append([name, "-", "-", "-", "-", "-", "-", f"failed: {err}"])
        else:
            rows.append(
                [
                    name,
                    f"{r['wall_median_s']:.2f}",
                    f"{r['wall_min_s']:.2f}-{r['wall_max_s']:.2f}",
                    f"{r['cpu_median_s']:.2f}",
                    f"{r['packets_per_s']:,.0f}",
                    f"{r['peak_rss_bytes'] / 2**20:,.1f}",
                    f"{r['rss_bytes_per_packet']:,.1f}",
                    f"ok ({r['runs']} runs, exit {','.join(map(str, r['exit_codes']))})",
                ]
            )
    return rows


HEADERS = [
    "tool",
    "wall s (median)",
    "wall min-max",
    "CPU s",
    "packets/s",
    "peak RSS MiB",
    "RSS B/packet",
    "status",
]


def render(report: dict, markdown: bool) -> str:
    cap = report["capture"]
    m = report["machine"]
    out = []
    hdr = (
        f"capture: {cap['path']} ({cap['format']}, {cap['packets']:,} packets, {cap['bytes'] / 1e6:,.1f} MB); "
        f"median of {report['repeat']} runs, warm page cache"
    )
    env = f"machine: {m['nproc']} CPUs ({m['cpu']}), {m['date']}; peak RSS via {m['rss_source']}"
    out += [f"- {hdr}", f"- {env}", ""] if markdown else [hdr, env, ""]

    def table(results: dict, packets: int) -> list[str]:
        rows = rows_for(results, packets)
        if markdown:
            lines = [
                "| " + " | ".join(HEADERS) + " |",
                "|" + "|".join(["---"] + ["---:"] * 6 + ["---"]) + "|",
            ]
            lines += ["| " + " | ".join(r) + " |" for r in rows]
            return lines
        widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(HEADERS)]
        fmt_row = lambda r: "  ".join(  # noqa: E731
            c.ljust(widths[i]) if i in (0, 7) else c.rjust(widths[i]) for i, c in enumerate(r)
        )
        return [fmt_row(HEADERS), "  ".join("-" * w for w in widths), *map(fmt_row, rows)]

    out += table(report["results"], cap["packets"])
    out.append("")
    rt = report["ratios"]
    bullet = "- " if markdown else "  "
    out += [
        "Ratios (time = median wall time, CPU = median user+sys time, memory = peak RSS; per round = median of the",
        "ratios of the two tools' runs in the same round, lowest-highest):",
        "",
    ]
    for label, key, top, bottom in RATIOS:
        if key not in rt or not {top, bottom} <= set(report["results"]):
            continue  # pcapmtu-pure and pcapmtu-baseline run only when asked for
        t, cpu, mem = rt[key]["time"], rt[key].get("cpu"), rt[key]["rss"]
        if t is None:
            out.append(f"{bullet}{label}: n/a (a tool was skipped or failed)")
        else:
            cpu_text = "n/a" if cpu is None else f"{cpu:.2f}x"
            per_round = ""
            if rt[key].get("time_per_round") is not None:
                r = rt[key]
                per_round = (
                    f" (per round {r['time_per_round']:.2f}x, "
                    f"{r['time_per_round_min']:.2f}-{r['time_per_round_max']:.2f}x)"
                )
            out.append(f"{bullet}{label}: time {t:.2f}x{per_round}, CPU {cpu_text}, memory {mem:.2f}x")
    loads = [
        (n, r["other_load_max"])
        for res in (report["results"], (report.get("scale") or {}).get("results", {}))
        for n, r in res.items()
        if r.get("other_load_max") is not None
    ]
    if loads and max(v for _, v in loads) >= 0.15:
        worst = max(v for _, v in loads)
        out.append(
            f"{bullet}WARNING: other processes kept up to {worst:.2f} of {m['nproc']} CPUs busy during some runs; "
            "wall times are inflated there (CPU s is the steadier figure)"
        )
    if report.get("scale"):
        sc = report["scale"]
        out += [
            "",
            f"Scale check: the same tools on the first {sc['fraction']:.0%} of the capture ({sc['packets']:,} packets)",
            "",
        ]
        out += table(sc["results"], sc["packets"])
        out.append("")
        for name, g in sc["growth"].items():
            out.append(f"{bullet}{name}: {g}")
    notes = [f"{n}: {v}" for n, v in report["versions"].items() if v]
    if notes:
        out += ["", "Versions:"] + [f"{bullet}{n}" for n in notes]
    return "\n".join(out)


def all_ratios(results: dict) -> dict:
    return {key: ratios(results.get(top, {}), results.get(bottom, {})) for _, key, top, bottom in RATIOS}


def growth_verdict(full: dict, pre: dict, n_full: int, n_pre: int) -> str:
    if "error" in full or "error" in pre or "peak_rss_bytes" not in full or "peak_rss_bytes" not in pre:
        return "n/a"
    a, b = pre["peak_rss_bytes"], full["peak_rss_bytes"]
    slope = (b - a) / (n_full - n_pre) if n_full > n_pre else 0.0
    s = (
        f"peak RSS {a / 2**20:,.1f} MiB at {n_pre:,} packets ({a / n_pre:,.0f} B/packet) -> "
        f"{b / 2**20:,.1f} MiB at {n_full:,} ({b / n_full:,.0f} B/packet); "
        f"marginal {slope:,.0f} B per extra packet"
    )
    if b <= a * 1.15:
        return s + ": flat, memory does not grow with the file"
    return (
        s
        + f": grows with the file (projected {(b + slope * 9 * n_full) / 2**30:,.1f} GiB at {10 * n_full:,} packets)"
    )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "_rusage":
        return _rusage_wrapper(argv[1:])
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("capture", nargs="?", type=Path, help=f"capture file (default {DEFAULT_CAPTURE})")
    p.add_argument("--repeat", type=int, default=3, help="repetitions per tool; the median is reported (3)")
    p.add_argument("--pcapmtu", help="command to run pcapmtu (default: .venv/bin/pcapmtu under the repo)")
    p.add_argument(
        "--baseline",
        help="command to run another pcapmtu, timed as the tool pcapmtu-baseline (added to --tools) "
        "in the same run, e.g. an install of the last release",
    )
    p.add_argument(
        "--tools",
        default=",".join(TOOLS),
        help="comma-separated, from pcapmtu,tshark,tcptrace (default) and tshark-noreasm, pcapmtu-pure",
    )
    p.add_argument("--scale", action="store_true", help="also run on a prefix of the capture, compare RSS")
    p.add_argument("--scale-fraction", type=float, default=0.25, help="prefix size for --scale (0.25)")
    p.add_argument("--timeout", type=float, default=3600, help="seconds before one run is abandoned")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--markdown", action="store_true", help="print the results as Markdown")
    out.add_argument("--json", action="store_true", help="print the results as JSON")
    p.add_argument("--save-json", type=Path, help="also write the JSON report to this file")
    p.add_argument("--from-json", type=Path, help="do not measure: print a report saved with --save-json")
    a = p.parse_args(argv)
    if a.from_json:
        report = json.loads(a.from_json.read_text())
        report["ratios"] = all_ratios(report["results"])  # recomputed: older reports lack the CPU one
        print(json.dumps(report, indent=2) if a.json else render(report, a.markdown))
        return 0
    names = [n.strip() for n in a.tools.split(",") if n.strip()]
    if a.baseline and "pcapmtu-baseline" not in names:
        names.append("pcapmtu-baseline")
    if bad := [n for n in names if n not in TOOLS + EXTRA_TOOLS]:
        p.error(f"unknown tool(s): {', '.join(bad)}")
    if a.repeat < 1 or not 0 < a.scale_fraction < 1:
        p.error("--repeat must be >= 1 and --scale-fraction in (0, 1)")

    capture = a.capture
    if capture is None:
        capture = DEFAULT_CAPTURE
        if not capture.exists():
            if os.geteuid() != 0:
                p.error(f"no capture given and {capture} does not exist; run make_capture.py as root first")
            log(f"{capture} missing: building it with make_capture.py (a few minutes)")
            subprocess.run([sys.executable, str(HERE / "make_capture.py"), "--out", str(capture)], check=True)
    capture = capture.resolve()
    if not capture.is_file():
        p.error(f"{capture}: no such file")

    fmt, packets = count_packets(capture)
    log(f"{capture}: {fmt}, {packets:,} packets, {capture.stat().st_size:,} bytes")
    if packets == 0:
        p.error("capture has no packets")
    secs = warm_cache(capture)
    log(f"page cache warmed (read in {secs:.2f} s)")

    tools = tool_commands(a.pcapmtu, a.baseline)
    warm_bytecode(tools)
    runnable = []
    results: dict[str, dict] = {}
    for n in names:
        if tools[n]["argv"] is None:
            log(f"skipping {n}: {tools[n]['note']}")
        else:
            runnable.append(n)
    timed = run_suite(tools, runnable, capture, packets, a.repeat, a.timeout)
    for n in names:
        results[n] = timed[n] if n in timed else {"skipped": tools[n]["note"]}

    report = {
        "capture": {"path": str(capture), "format": fmt, "packets": packets, "bytes": capture.stat().st_size},
        "repeat": a.repeat,
        "machine": machine_info(),
        "versions": {n: tool_version(n, tools[n]["argv"]) for n in names},
        "results": results,
        "ratios": all_ratios(results),
    }
    if a.scale:
        prefix, n_pre = write_prefix(capture, a.scale_fraction, packets)
        warm_cache(prefix)
        log(f"scale check on {prefix.name} ({n_pre:,} packets)")
        timed = run_suite(tools, runnable, prefix, n_pre, a.repeat, a.timeout)
        sres = {n: timed[n] if n in timed else {"skipped": tools[n]["note"]} for n in names}
        report["scale"] = {
            "fraction": a.scale_fraction,
            "path": str(prefix),
            "packets": n_pre,
            "results": sres,
            "growth": {n: growth_verdict(results[n], sres[n], packets, n_pre) for n in runnable},
        }

    if a.save_json:
        a.save_json.parent.mkdir(parents=True, exist_ok=True)
        a.save_json.write_text(json.dumps(report, indent=2) + "\n")
    if a.json:
        print(json.dumps(report, indent=2))
    else:
        print(render(report, a.markdown))
    return 0


if __name__ == "__main__":
    sys.exit(main())
