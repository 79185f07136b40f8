#!/usr/bin/env python3
"""pcapmtu lab: rebuild the Docker MTU black hole (and look-alikes) in network namespaces and capture it.

Per scenario it builds four namespaces -- container, dockerhost (docker0 bridge + NAT + uplink), router,
server ("internet": dnsmasq + HTTP/HTTPS) --, runs curl (and pings) by host name, captures on the
container's eth0 and on the host's uplink at the same time (and in some scenarios on the server's link to
the router), and writes

    <outdir>/<scenario>/container.pcap   <outdir>/<scenario>/host.pcap   <outdir>/<scenario>/truth.json
    <outdir>/<scenario>/server.pcap      (scenarios with a server capture)
    <outdir>/<scenario>/host_shifted.pcap, container_midstream.pcap   (derived variants, lab_derive.py)

truth.json holds the configuration, the curl results, the tshark facts of the captures, the checks that
prove the capture shows what the scenario claims, and `analyses`: how the analyzer is run on these files
and what it must conclude. A scenario whose checks fail is an error.

Needs root, Python 3.11 stdlib, iproute2, iptables, ethtool, tcpdump, tshark, dnsmasq, curl, openssl, ping.
Every namespace and link is named pml-<run id>-*; only namespaces this process created are ever deleted.

    sudo python3 sample_pcaps/lab.py --list
    sudo python3 sample_pcaps/lab.py --all --jobs 2
    sudo python3 sample_pcaps/lab.py --scenario blackhole_tls13 --outdir /tmp/pcaps
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import ipaddress
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import lab_derive
import lab_oracle
import lab_scenarios as cat
from lab_run import ScenarioRun, Settings
from lab_scenarios import Plan, Scenario, bare
from lab_system import PREFIX, RES, make_pki, tool_versions
from netns_kit import Aborted, LabError

LAB_DIR = Path(__file__).resolve().parent
REQUIRED_TOOLS = ["ip", "iptables", "ip6tables", "ethtool", "sysctl", "tcpdump", "dumpcap", "tshark"]
REQUIRED_TOOLS += ["capinfos", "dnsmasq", "curl", "openssl", "ping"]

# --- truth.json ------------------------------------------------------------------------------------------

PLAN_FIELDS = (
    "container_net",
    "uplink_net",
    "internet_net",
    "container_net6",
    "uplink_net6",
    "internet_net6",
)


def outputs(s: Scenario) -> list[str]:
    """The files a scenario writes into <outdir>/<scenario>/."""
    return [f"{role}.pcap" for role in (*s.captures, *s.derive)] + ["truth.json"]


def derive(s: Scenario, flows: list[dict], staging: Path) -> dict:
    """Write the scenario's derived variants (lab_derive.py) into staging; their truth.json `derived`."""
    out = {}
    if "host_shifted" in s.derive:
        summary = lab_derive.shift_timestamps(
            staging / "host.pcap", staging / "host_shifted.pcap", cat.HOST_SHIFT_S
        )
        out["host_shifted"] = {"file": "host_shifted.pcap", "source": "host.pcap", **summary}
    if "container_midstream" in s.derive:
        hanging = next(f for f in flows if f["client"] == "container" and f["expected"] == "failed")
        if hanging["client_port"] is None:
            raise LabError(f"{s.name}: curl did not report the local port of {hanging['name']}")
        summary = lab_derive.cut_midstream(
            staging / "container.pcap",
            staging / "container_midstream.pcap",
            hanging["server_ip"],
            hanging["server_port"],
            hanging["client_port"],
        )
        out["container_midstream"] = {
            "file": "container_midstream.pcap",
            "source": "container.pcap",
            "connection": {
                "flow": hanging["name"],
                "client_port": hanging["client_port"],
                "server_ip": hanging["server_ip"],
                "server_port": hanging["server_port"],
            },
            "cut": "every packet up to and including the client's ACK of this connection's SYN-ACK",
            **summary,
        }
    return out


def build_truth(run: ScenarioRun, result: dict, staging: Path, attempt: int, versions: dict) -> dict:
    """Configuration, client results, tshark facts and evaluated checks of one finished run."""
    s, p, a = run.s, run.plan, run.addr
    derived = derive(s, result["flows"], staging)
    captures = {role: staging / f"{role}.pcap" for role in s.captures}
    facts = {role: lab_oracle.measure(path) for role, path in captures.items()}
    checks = [{k: v for k, v in dataclasses.asdict(c).items() if v is not None} for c in s.checks(s, p)]
    files = captures | {name: staging / f"{name}.pcap" for name in derived}
    checks = lab_oracle.evaluate_checks(files, checks, facts)
    v6 = "_6" if s.ipv6 else ""
    clamp = None
    if s.clamp:
        rule = next(r for r in run.rules["host"] if "TCPMSS" in r)
        clamp = {"type": s.clamp, "mss": s.clamp_mss if s.clamp == "set-mss" else None, "rule": rule}
    return {
        "scenario": s.name,
        "description": s.description,
        "conclusion": s.conclusion,
        "expected_verdict": s.verdict,
        "not_mtu_reason": s.not_mtu_reason,
        "config": {
            "ip_version": 6 if s.ipv6 else 4,
            "mtus": run.mtus(),
            "clamp": clamp,
            "tls_version": s.tls_version,
            "router_drops_icmp_too_big": s.drop_icmp,
            "server_tcp_mtu_probing": s.server_mtu_probing,
            "server_drops_icmp_too_big": s.server_drop_icmp,
            "server_keep_alive": s.server_keepalive,
            "offloads": "on (TSO/GSO default, GRO on)" if s.offloads else "off (tso gso gro tx)",
            "loss_probability": s.loss_probability,
            "https_listener": s.https_listener,
            "vxlan": {"vni": 4242, "dstport": 4789} if s.vxlan else None,
            "addresses": {k: v for k, v in a.items() if s.ipv6 or not k.endswith("_6")},
            "ports": {"http": p.http_port, "https": p.https_port, "dns": 53},
            "names": {name: bare(a[role + v6]) for role, name in cat.NAMES.items()},
            "certificate_chain_der_bytes": run.pki["der_sizes"],
            "rules": {k: v for k, v in run.rules.items() if v},
            "captures": {
                role: {"file": f"{role}.pcap", "netns": role, "command": run.anon(" ".join(cmd))}
                for role, cmd in run.capture_commands(Path(".")).items()
            },
        },
        "flows": result["flows"],
        "pings": result["pings"],
        "facts": facts,
        "checks": checks,
        "analyses": cat.analyses(s),
        "derived": derived,
        "generation": {"attempt": attempt, "duration_s": result["duration_s"], "tools": versions},
    }


def run_scenario(scenario: Scenario, settings: Settings, pki: dict, versions: dict) -> dict:
    """Run (again, up to scenario.attempts, where the effect is random) until the checks pass.

    The result is built in a temp dir and only then replaces <outdir>/<scenario>, so a failed run never
    clobbers good captures.
    """
    problems: list[str] = []
    where = ""
    for attempt in range(1, scenario.attempts + 1):
        workdir = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{scenario.name}-"))
        staging = workdir / "out"
        staging.mkdir()
        run = ScenarioRun(scenario, settings, pki, workdir)
        result = run.run(staging)
        truth = build_truth(run, result, staging, attempt, versions)
        (staging / "truth.json").write_text(json.dumps(truth, indent=2) + "\n")
        problems = lab_oracle.truth_problems(truth) if settings.verify else []
        if not problems:
            final = settings.outdir / scenario.name
            shutil.rmtree(final, ignore_errors=True)
            final.mkdir(parents=True)
            for name in outputs(scenario):
                shutil.copyfile(staging / name, final / name)
            shutil.rmtree(workdir, ignore_errors=True)
            return truth
        if settings.keep_failed:
            where = f"\n  (captures, truth.json and logs kept in {workdir})"
        else:
            shutil.rmtree(workdir, ignore_errors=True)
        if attempt < scenario.attempts:
            print(f"[{scenario.name}] attempt {attempt} did not show the effect, retrying: {problems[0]}")
    raise LabError(f"{scenario.name} does not show what it claims:\n  " + "\n  ".join(problems) + where)


# --- command line ----------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sel = ap.add_argument_group("what to run")
    sel.add_argument("--scenario", action="append", default=[], metavar="NAME", help="repeatable")
    sel.add_argument("--all", action="store_true", help="every scenario")
    sel.add_argument("--list", action="store_true", help="list the scenarios and exit")
    run = ap.add_argument_group("how")
    run.add_argument("--outdir", type=Path, default=LAB_DIR, help="default: the directory of lab.py")
    run.add_argument("--jobs", type=int, default=2, help="scenarios run in parallel (default: 2)")
    run.add_argument("--curl-timeout", type=float, default=8.0, help="curl --max-time of hanging flows (8)")
    run.add_argument("--no-verify", action="store_true", help="keep captures even if their checks fail")
    run.add_argument("--keep-failed", action="store_true", help="keep the temp dir of a failed scenario")
    run.add_argument("--fail-fast", action="store_true", help="start no new scenario after a failure")
    ov = ap.add_argument_group("overrides, applied to every selected scenario (checks follow the values)")
    ov.add_argument("--host-mtu", type=int, help="dockerhost uplink MTU and the router's side of it")
    ov.add_argument("--container-mtu", type=int, help="container eth0 + docker0 MTU")
    ov.add_argument("--clamp", choices=["none", "set-mss", "pmtu"], help="TCPMSS rule on the host")
    ov.add_argument("--clamp-mss", type=int, help="MSS of --clamp set-mss (1410)")
    ov.add_argument("--tls-version", choices=["1.2", "1.3"])
    ov.add_argument("--http-port", type=int, default=80)
    ov.add_argument("--https-port", type=int, default=443)
    defaults = Plan()
    for name in PLAN_FIELDS:
        flag = "--" + name.replace("_net", "-subnet").replace("_", "-")
        default = getattr(defaults, name)
        ov.add_argument(flag, dest=name, type=ipaddress.ip_network, default=default, help=f"({default})")
    return ap.parse_args(argv)


def selected(args: argparse.Namespace) -> list[Scenario]:
    names = list(cat.SCENARIOS) if args.all else args.scenario
    if not names:
        raise LabError("nothing to do: give --scenario NAME (repeatable), --all or --list")
    overrides: dict = {}
    if args.host_mtu is not None:
        overrides |= {"host_mtu": args.host_mtu, "router_host_mtu": None}
    if args.container_mtu is not None:
        overrides["container_mtu"] = args.container_mtu
    if args.clamp is not None:
        overrides["clamp"] = None if args.clamp == "none" else args.clamp
    if args.clamp_mss is not None:
        overrides["clamp_mss"] = args.clamp_mss
    if args.tls_version is not None:
        overrides["tls_version"] = args.tls_version
    return [dataclasses.replace(cat.get(n), **overrides) for n in names]


def preflight() -> None:
    if os.geteuid() != 0:
        raise LabError("lab.py needs root (network namespaces, iptables, packet capture)")
    missing = [t for t in REQUIRED_TOOLS if shutil.which(t) is None]
    if missing:
        raise LabError(
            f"missing tools: {', '.join(missing)}; install the packages in sample_pcaps/APT_PACKAGES"
        )


def main(argv: list[str] | None = None) -> int:
    """Exit codes: 0 all scenarios ok, 1 a scenario failed, 2 bad arguments or environment, 130 signal."""
    args = parse_args(argv)
    if args.list:
        for s in cat.SCENARIOS.values():
            print(f"{s.name:22} {s.verdict:24} {s.description}")
        return 0
    try:
        scenarios = selected(args)
        plan = Plan(
            **{k: getattr(args, k) for k in PLAN_FIELDS}, http_port=args.http_port, https_port=args.https_port
        )
        plan.validate()
        preflight()
    except (LabError, cat.CatalogError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    def on_signal(signum: int, _frame) -> None:
        RES.aborted.set()
        RES.cleanup()
        raise Aborted(f"interrupted by signal {signum}")

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    settings = Settings(args.outdir.resolve(), plan, args.curl_timeout, not args.no_verify, args.keep_failed)
    started = time.monotonic()
    failures: dict[str, str] = {}
    pki_dir = Path(tempfile.mkdtemp(prefix=f"{PREFIX}pki-"))

    def one(s: Scenario) -> None:
        if args.fail_fast and failures:
            return
        t0 = time.monotonic()
        try:
            truth = run_scenario(s, settings, pki, versions)
        except Aborted:
            raise
        except Exception as exc:  # one broken scenario must not hide the others' results
            failures[s.name] = f"{type(exc).__name__}: {exc}"
            print(
                f"[{s.name}] FAILED after {time.monotonic() - t0:.0f} s: {exc}", file=sys.stderr, flush=True
            )
            return
        sizes = ", ".join(
            f"{name} {(settings.outdir / s.name / name).stat().st_size} B"
            for name in outputs(s)
            if name.endswith(".pcap")
        )
        exits = ", ".join(f"{f['name']}={f['curl_exit_code']}" for f in truth["flows"])
        print(
            f"[{s.name}] ok in {time.monotonic() - t0:.0f} s (attempt {truth['generation']['attempt']}); "
            f"{sizes}; curl exit codes: {exits}",
            flush=True,
        )

    try:
        versions = tool_versions()
        print(f"generating the certificate chain in {pki_dir} ...", flush=True)
        pki = make_pki(pki_dir)
        with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            for future in [pool.submit(one, s) for s in scenarios]:
                future.result()
    except Aborted as exc:
        print(f"aborted: {exc}", file=sys.stderr)
        return 130
    finally:
        RES.cleanup()
        shutil.rmtree(pki_dir, ignore_errors=True)
    ok = len(scenarios) - len(failures)
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(
        f"{ok}/{len(scenarios)} scenarios ok in {time.monotonic() - started:.0f} s ({when}) -> {settings.outdir}"
    )
    for name, err in failures.items():
        print(f"FAILED {name}: {err}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
