"""`pcapmtu scan`: finding captures, grouping them into incidents, one JSON line per group with the verdict
truth.json states, the summary, --fail-on exit codes, damaged files, resuming, reports, index.html, Parquet.

The fast tier scans a few lab scenarios; the sweeps over every scenario and the interrupted run are `lab`.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pcapmtu.cli import app
from pcapmtu.diagnose.detectors import RULES
from pcapmtu.errors import UsageError
from pcapmtu.scan.discover import MANIFEST_NAME, discover
from pcapmtu.scan.groups import connection_keys, group
from support.environment import ROOT, SAMPLES, lab_scenarios
from support.fleet import by_scenario, comparable, die_on_two, flat_fleet, folder_fleet
from support.report_schema import validate

SCHEMA = json.loads((Path(__file__).parent / "scan_line_schema.json").read_text())
FEW = ["blackhole_tls12", "fixed_clamp_setmss", "refused"]  # an incident, a healthy node, a look-alike
runner = CliRunner()


def invoke(*args):
    result = runner.invoke(app, [str(a) for a in args])
    return result, f"exit {result.exit_code}\n{result.output}"


def jsonl(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def assert_valid(line: dict) -> None:
    errors = validate(line, SCHEMA, root=SCHEMA)
    assert not errors, "\n".join(errors[:20])
    assert (
        (line["status"] == "error")
        == (line["verdict"] is None)
        == bool(line["errors"] and not line["files"][0]["analysed_as"])
    )
    for f in line["top_findings"]:
        assert RULES[f["code"]].name == f["name"] and RULES[f["code"]].severity == f["severity"], f


def assert_truth(line: dict, analysis: dict) -> None:
    """The line concludes what truth.json says this analysis of the scenario must."""
    assert line["status"] == "ok", line["errors"]
    assert line["verdict"] == analysis["expected_verdict"], (line["name"], line["verdict"], analysis)
    assert line["reason"] == analysis["not_mtu_reason"], (line["name"], line["reason"], analysis)
    true_mtu = analysis.get("path_mtu")  # as test_lab_analyses reads it: null states nothing
    if true_mtu is not None:
        allowed = {true_mtu} if analysis.get("path_mtu_evident", True) else {None, true_mtu}
        assert line["path_mtu"] in allowed, (line["name"], line["path_mtu"], analysis)


def scan_cli(*args, fail_on: str | None = None):
    extra = ["--fail-on", fail_on] if fail_on else []
    return invoke("scan", *args, "--workers", "2", *extra)


# ------------------------------------------------------------------------------------------ discovery
def test_discovery_takes_named_files_walks_folders_for_captures_and_refuses_what_names_nothing(tmp_path):
    (tmp_path / "node" / ".git").mkdir(parents=True)
    for name in ("host.pcap", "container-web.pcapng.gz", "notes.txt", "truth.json", ".git/x.pcap"):
        (tmp_path / "node" / name).write_bytes(b"x")
    (tmp_path / "odd.bin").write_bytes(b"x")
    (tmp_path / "node" / MANIFEST_NAME).write_text("{}")
    found = discover([tmp_path / "node", tmp_path / "odd.bin", str(tmp_path / "node" / "host.*")])
    assert [p.name for p in found.captures] == ["container-web.pcapng.gz", "host.pcap", "odd.bin"]
    assert [p.name for p in found.manifests] == [MANIFEST_NAME]
    for missing in (tmp_path / "nope.pcap", str(tmp_path / "*.nothing")):
        with pytest.raises(UsageError, match="no such file|no file matches"):
            discover([missing])


def never_read(paths):
    raise AssertionError(f"pairing asked to read {paths}")


def test_names_make_a_folder_one_incident_and_leave_other_files_to_pairing(tmp_path):
    node = tmp_path / "node-a"
    node.mkdir()
    for name in ("host.pcap", "container.pcap", "container-web.pcap", "server.pcap", "other.pcap"):
        (node / name).write_bytes(b"x")
    asked = []
    groups = group(discover([tmp_path]), lambda paths: asked.append(paths) or [])
    assert asked == []  # a lone leftover needs no reading: it stands alone
    named, alone = groups
    assert (named.name, named.grouped_by) == ("node-a", "names")
    assert [(Path(m.path).name, m.role) for m in named.members] == [
        ("host.pcap", "host"), ("container.pcap", "container"), ("container-web.pcap", "container"),
        ("server.pcap", "server"),
    ]  # fmt: skip
    assert (alone.grouped_by, [Path(m.path).name for m in alone.members]) == ("alone", ["other.pcap"])
    again = group(discover([node]), never_read)
    assert [g.id for g in again] == [g.id for g in groups]  # the same folder, the same group ids


def test_pairing_puts_the_captures_of_one_connection_together(tmp_path):
    """A host capture and its container's share the client's initial sequence numbers across NAT; another
    node's capture shares none."""
    flat_fleet(tmp_path, ["blackhole_tls12"])
    shutil.copy(SAMPLES / "refused" / "container.pcap", tmp_path / "node-c.pcap")
    groups = group(discover([tmp_path]), lambda paths: [connection_keys(p) for p in paths])
    shapes = sorted((g.grouped_by, sorted(Path(m.path).name for m in g.members)) for g in groups)
    assert shapes == [
        ("alone", ["node-c.pcap"]), ("pairing", ["blackhole_tls12-a.pcap", "blackhole_tls12-b.pcap"])
    ]  # fmt: skip
    assert connection_keys(str(tmp_path / "missing.pcap")) == frozenset()


def test_a_manifest_names_groups_and_roles_and_a_wrong_one_is_a_usage_error(tmp_path):
    for name in ("eth0.pcap", "veth1.pcap"):
        shutil.copy(SAMPLES / "blackhole_tls12" / "host.pcap", tmp_path / name)
    manifest = tmp_path / MANIFEST_NAME
    manifest.write_text(
        json.dumps(
            {"groups": [{"name": "n1", "host": "eth0.pcap", "containers": ["veth1.pcap"], "host_mtu": 1450}]}
        )
    )
    (g,) = group(discover([tmp_path]), never_read)
    assert (g.name, g.grouped_by, g.host_mtu) == ("n1", "manifest", 1450)
    assert [(Path(m.path).name, m.role) for m in g.members] == [
        ("eth0.pcap", "host"),
        ("veth1.pcap", "container"),
    ]
    for bad in (
        {"groups": []},
        {"groups": [{"host": ["a", "b"]}]},
        {"groups": [{"hots": "a"}]},
        {"groups": [{}]},
    ):
        manifest.write_text(json.dumps(bad))
        with pytest.raises(UsageError, match=MANIFEST_NAME):
            group(discover([tmp_path]), never_read)
    manifest.write_text("{not json")
    result, out = scan_cli(tmp_path)
    assert result.exit_code == 2 and MANIFEST_NAME in result.output and "Traceback" not in out, out


# ------------------------------------------------------------------------------------------ the scan
def test_scan_gives_each_group_its_verdict_goes_past_a_damaged_file_and_resumes(tmp_path):
    expected = folder_fleet(tmp_path / "fleet", FEW)
    damaged = tmp_path / "fleet" / "node-damaged"
    damaged.mkdir()
    (damaged / "host.pcap").write_bytes((SAMPLES / "blackhole_tls12" / "host.pcap").read_bytes()[:10])
    shutil.copy(SAMPLES / "blackhole_tls12" / "container.pcap", damaged / "container.pcap")
    hostile = (
        tmp_path / "fleet" / "<img src=x onerror=alert(1)>[red]node"
    )  # names reach HTML and the terminal
    shutil.copytree(SAMPLES / "refused", hostile, ignore=shutil.ignore_patterns("*.json"))
    out, parquet = tmp_path / "out", tmp_path / "pq"

    result, text = scan_cli(tmp_path / "fleet", "--jsonl", "-", "--out", out, "--parquet", parquet)
    assert result.exit_code == 1, text  # default --fail-on: an MTU black hole is among them
    lines = jsonl(result.stdout)
    assert len(lines) == 5, text
    for line in lines:
        assert_valid(line)
    found = by_scenario(lines)
    for scenario, analysis in expected.items():
        assert_truth(found[scenario], analysis)
    bad = found["node-damaged"]
    assert bad["status"] == "error" and bad["verdict"] is None, bad
    assert "host.pcap" in bad["errors"][0], bad["errors"]
    assert f"pcapmtu: node-damaged: {bad['errors'][0][:40]}" in result.stderr, text  # and on stderr
    assert "5 groups: " in result.stderr and "1 error" in result.stderr, text  # the summary, beside the lines
    assert "[red]node" in result.stderr, text  # shown as it is, not as markup

    # --out: the same lines worst first, one report per analysed group, an index that links them in order
    kept = jsonl((out / "scan.jsonl").read_text())
    assert comparable(kept) == comparable(lines)
    assert [line["verdict"] for line in kept][0] == "mtu_blackhole" and kept[-1]["verdict"] == "healthy"
    index = (out / "index.html").read_text()
    assert "<img" not in index and "&lt;img src=x onerror=alert(1)&gt;[red]node" in index
    links = [line["report"] for line in kept if line["report"]]
    assert len(links) == 4 and all((out / link).is_file() for link in links)
    assert [index.index(f'href="{link}"') for link in links] == sorted(
        index.index(f'href="{link}"') for link in links
    )
    assert json.loads((out / links[0]).with_name("report.json").read_text())["verdict"] == kept[0]["verdict"]

    # --parquet: DuckDB reads each table as one, `group` from the partition folders
    duckdb = pytest.importorskip("duckdb")
    rows = duckdb.sql(
        f"SELECT \"group\", status, verdict, path_mtu FROM read_parquet('{parquet}/groups/*/*.parquet', "
        "hive_partitioning = true) ORDER BY 1"
    ).fetchall()
    assert rows == sorted((x["group"], x["status"], x["verdict"], x["path_mtu"]) for x in lines)
    flows = dict(duckdb.sql(
        f"SELECT \"group\", count(*) FROM read_parquet('{parquet}/flows/*/*.parquet', hive_partitioning = true) "
        "GROUP BY 1"
    ).fetchall())  # fmt: skip
    for line in lines:
        if line["status"] == "ok":
            report = json.loads((out / line["report"]).with_name("report.json").read_text())
            assert flows[line["group"]] == sum(c["tcp_connections"] for c in report["captures"]), line["name"]
    findings = duckdb.sql(
        f"SELECT code, file, role FROM read_parquet('{parquet}/findings/*/*.parquet', hive_partitioning = true) "
        f"WHERE \"group\" = '{found['blackhole_tls12']['group']}' AND code = 'B001'"
    ).fetchall()
    assert findings and all(file.endswith(".pcap") for _code, file, _role in findings), findings

    # a second run into the same --out skips what is done, runs the damaged group again, same lines
    result, text = scan_cli(tmp_path / "fleet", "--jsonl", "-", "--out", out, "--parquet", parquet)
    assert result.exit_code == 1 and "4 done by an earlier run, skipped" in result.output, text
    assert comparable(jsonl(result.stdout)) == comparable(lines)


FAIL_ON = [
    ("not_mtu", 1),
    ("healthy,inconclusive", 1),
    ("error", 1),
    ("none", 0),
    ("mtu_blackhole_recovered", 0),
]


def test_fail_on_drives_the_exit_code(tmp_path):
    """Verdicts present in the fleet (not_mtu, healthy, an error) exit 1; absent ones 0. The first run
    analyses the groups; the state file makes the others resume (the damaged group is run again each time)."""
    fleet = tmp_path / "fleet"
    folder_fleet(fleet, ["refused", "fixed_clamp_setmss"])
    (fleet / "broken").mkdir()
    (fleet / "broken" / "host.pcap").write_bytes(b"\xd4\xc3\xb2\xa1 not a capture")
    for fail_on, code in FAIL_ON:
        result, text = scan_cli(fleet, "--state", tmp_path / "state.jsonl", "-q", fail_on=fail_on)
        assert result.exit_code == code, (fail_on, text)
        assert result.stdout == "", text  # --quiet: nothing but the errors, one line each
        assert result.stderr.startswith("pcapmtu: broken: ") and len(result.stderr.splitlines()) == 1, text


def test_usage_errors_and_a_scan_where_every_group_fails_exit_2(tmp_path):
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "host.pcap").write_bytes(b"garbage")
    result, text = scan_cli(tmp_path, fail_on="mtu_blackhole")
    assert result.exit_code == 2 and "no group could be analysed" in result.output, text
    assert "broken" in result.output and "Traceback" not in text, text
    for args in (
        [tmp_path / "nothing-here"],
        [tmp_path, "--fail-on", "blackhole"],
        [tmp_path, "--workers", "0"],
    ):
        result, text = invoke("scan", *args)
        assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1, text
    (tmp_path / "empty").mkdir()
    result, text = invoke("scan", tmp_path / "empty")
    assert result.exit_code == 2 and "no capture found" in result.output, text
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "index.html").write_text("someone else's")
    result, text = invoke("scan", tmp_path / "broken", "--out", tmp_path / "out")
    assert result.exit_code == 2 and "--force" in result.output, text  # not an earlier scan's index


def test_a_worker_that_dies_costs_only_its_own_group_an_error():
    """A dead worker breaks the pool for every job in flight; each is run again alone, and only the one
    that kills its worker again gets the error result."""
    from pcapmtu.scan.local import LocalEngine

    engine = LocalEngine(2)
    try:
        got = dict(engine.run_all(die_on_two, [(1,), (2,), (3,), (4,)], on_death=lambda i: f"died {i}"))
    finally:
        engine.close()
    assert got == {0: 10, 1: "died 1", 2: 30, 3: 40}


def test_rules_json_lists_every_rule_for_tooling():
    result = runner.invoke(app, ["rules", "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["schema_version"] == 1 and [r["code"] for r in doc["rules"]] == sorted(RULES)
    for r in doc["rules"]:
        rule = RULES[r["code"]]
        assert (r["name"], r["severity"], r["why"]) == (rule.name, str(rule.severity), rule.why)
        assert r["verdict"] == (str(rule.implies) if rule.implies else None) and "{" not in r["message"]


def test_the_line_schema_is_documented_field_by_field():
    """docs/scan.md names every field of the line, with the schema version the code writes."""
    from pcapmtu.scan.line import SCHEMA_VERSION

    doc = (ROOT / "docs" / "scan.md").read_text()
    assert SCHEMA["properties"]["schema_version"]["const"] == SCHEMA_VERSION
    assert f'"schema_version": {SCHEMA_VERSION}' in doc or f"`schema_version` | `{SCHEMA_VERSION}`" in doc
    fields = set(SCHEMA["properties"]) | set(SCHEMA["properties"]["files"]["items"]["properties"])
    missing = [f for f in sorted(fields) if f"`{f}`" not in doc]
    assert not missing, f"docs/scan.md does not document {missing}"


# ------------------------------------------------------------------------------------------ lab sweeps
@pytest.mark.lab
def test_every_lab_scenario_grouped_by_names_and_by_pairing_gets_its_verdict(tmp_path):
    scenarios = [p.name for p in lab_scenarios() if p.parent == SAMPLES]
    folders = folder_fleet(tmp_path / "fleet", scenarios)
    flat = flat_fleet(tmp_path / "fleet" / "flat", scenarios)
    result, text = scan_cli(tmp_path / "fleet", "--jsonl", "-", "--limit", "0")
    lines = jsonl(result.stdout)
    for line in lines:
        assert_valid(line)
    named = by_scenario([x for x in lines if x["grouped_by"] == "names"])
    paired = by_scenario([x for x in lines if x["grouped_by"] != "names"])
    assert sorted(named) == sorted(folders) and sorted(paired) == sorted(flat), text
    for scenario in scenarios:
        assert_truth(named[scenario], folders[scenario])
        assert paired[scenario]["grouped_by"] == "pairing", paired[scenario]
        assert_truth(paired[scenario], flat[scenario])
    assert result.exit_code == 1, text


@pytest.mark.lab
def test_an_interrupted_scan_resumes_where_it_stopped(tmp_path):
    """Killed (SIGKILL) once some groups are done; the next run skips exactly those and ends with the lines
    of an uninterrupted run."""
    scenarios = [p.name for p in lab_scenarios() if p.parent == SAMPLES][:8]
    folder_fleet(tmp_path / "fleet", scenarios)
    out = tmp_path / "out"
    scan = [sys.executable, "-m", "pcapmtu", "scan", str(tmp_path / "fleet"), "--workers", "1"]
    cmd = [*scan, "--out", str(out), "-q"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            state = out / "scan.jsonl"
            if state.exists() and len(state.read_text().splitlines()) >= 2:
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the scan finished before it could be interrupted"
        os.killpg(proc.pid, signal.SIGKILL)  # the scan, its fork server and workers: its own session
    finally:
        proc.wait(timeout=30)
    done = jsonl((out / "scan.jsonl").read_text())
    assert 2 <= len(done) < len(scenarios)
    result = subprocess.run(
        [*scan, "--out", str(out), "--jsonl", str(tmp_path / "lines.jsonl")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1, result.stderr
    assert f"{len(done)} done by an earlier run, skipped" in result.stdout, result.stdout
    resumed = jsonl((tmp_path / "lines.jsonl").read_text())
    assert comparable(resumed[: len(done)]) == comparable(done)  # kept lines come first, as they were
    fresh = subprocess.run(  # --force: every group analysed again, into the same --out
        [*scan, "--out", str(out), "--jsonl", str(tmp_path / "fresh.jsonl"), "--force"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert fresh.returncode == 1, fresh.stderr
    assert "done by an earlier run" not in fresh.stdout, fresh.stdout
    assert comparable(resumed) == comparable(jsonl((tmp_path / "fresh.jsonl").read_text()))
