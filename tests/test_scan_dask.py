"""`pcapmtu scan --dask`: the same groups as Dask tasks on a real cluster (a `dask scheduler` and two
`dask worker` processes this module starts on 127.0.0.1), with the lines compared to the local run's.

The `dask_cluster` fixture puts these tests in the `service` tier (conftest SERVICE_FIXTURES).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pcapmtu.cli import app
from support.environment import IN_CI, SAMPLES, lab_scenarios
from support.fleet import by_scenario, comparable, flat_fleet, folder_fleet

runner = CliRunner()
START_TIMEOUT_S = 60


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _unavailable(reason: str):
    if IN_CI:  # CI installs the dev extras, Dask among them: a cluster that cannot start is a failure there
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def dask_cluster(tmp_path_factory):
    """The address of a running Dask cluster: a scheduler and two single-threaded workers, each a process
    of its own (in its own session, so teardown ends it and its children by its PID), working in another
    directory than the tests: the scan must give them absolute paths. Everything listens on 127.0.0.1 only
    (the HTTP endpoints too: `--dashboard-address`, which they open even with --no-dashboard)."""
    try:
        import dask.distributed as distributed
    except ImportError:
        _unavailable("dask[distributed] is not installed (pip install 'pcapmtu[fleet]')")
    where = tmp_path_factory.mktemp("dask")
    address = f"tcp://127.0.0.1:{_free_port()}"
    python = [sys.executable, "-m", "dask"]
    commands = [
        python + ["scheduler", "--host", "127.0.0.1", "--port", address.rsplit(":", 1)[1], "--no-dashboard",
                   "--dashboard-address", "127.0.0.1:0"],
        *(
            python + ["worker", address, "--host", "127.0.0.1", "--nthreads", "1", "--nworkers", "1",
                      "--no-dashboard", "--dashboard-address", "127.0.0.1:0", "--memory-limit", "3GiB", "--local-directory", str(where / f"w{n}"),
                      "--name", f"pcapmtu-test-{n}"]
            for n in (1, 2)
        ),
    ]  # fmt: skip
    procs: list[subprocess.Popen] = []
    logs = []
    try:
        for n, cmd in enumerate(commands):
            log = open(where / f"process{n}.log", "wb")  # noqa: SIM115 - closed at teardown
            logs.append(log)
            procs.append(subprocess.Popen(cmd, cwd=where, stdout=log, stderr=log, start_new_session=True))
            if n == 0:
                time.sleep(1.0)  # the scheduler listens before the workers knock
        try:
            with distributed.Client(address, timeout=START_TIMEOUT_S) as client:
                client.wait_for_workers(2, timeout=START_TIMEOUT_S)
        except (OSError, TimeoutError) as exc:
            text = "\n".join(
                (where / f"process{n}.log").read_text(errors="replace")[-1500:] for n in range(3)
            )
            _unavailable(f"the Dask cluster did not start ({exc}):\n{text}")
        yield address
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)  # the process and its nanny's worker: its own session
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        for log in logs:
            log.close()


def scan(*args) -> tuple[int, list[dict], str]:
    result = runner.invoke(app, ["scan", *map(str, args), "--jsonl", "-", "--limit", "0"])
    lines = [json.loads(x) for x in result.stdout.splitlines() if x.startswith("{")]
    return result.exit_code, lines, f"exit {result.exit_code}\n{result.output}"


def _fleet(tmp_path: Path, scenarios: list[str]) -> tuple[Path, dict]:
    fleet = tmp_path / "fleet"
    expected = folder_fleet(fleet, scenarios)
    expected |= {f"{k}": v for k, v in flat_fleet(fleet / "flat", scenarios[:2]).items() if k not in expected}
    damaged = fleet / "node-damaged"
    damaged.mkdir()
    (damaged / "host.pcap").write_bytes(
        (SAMPLES / "blackhole_tls12" / "host.pcap").read_bytes()[:10]
    )  # not even a whole file header
    return fleet, expected


def test_a_dask_cluster_gives_the_lines_of_the_local_run(dask_cluster, tmp_path):
    """Every lab scenario (a folder each), two pairs grouped by their connections and a damaged capture:
    the two workers give the very lines the local pool gives, and the verdicts truth.json states."""
    scenarios = [p.name for p in lab_scenarios() if p.parent == SAMPLES]
    fleet, expected = _fleet(tmp_path, scenarios)
    code, local, text = scan(fleet, "--workers", "2")
    assert code == 1, text
    code, remote, text = scan(
        fleet, "--dask", dask_cluster, "--out", tmp_path / "out", "--parquet", tmp_path / "pq"
    )
    assert code == 1, text
    assert len(remote) == len(scenarios) + 2 + 1, text
    assert [dict(x, report=None) for x in comparable(remote)] == comparable(local)
    named = by_scenario([x for x in remote if x["grouped_by"] == "names"])
    for scenario in scenarios:
        line = named[scenario]
        assert (line["verdict"], line["reason"]) == (
            expected[scenario]["expected_verdict"], expected[scenario]["not_mtu_reason"]
        ), line["name"]  # fmt: skip
        assert (tmp_path / "out" / line["report"]).is_file()  # written by a worker, into --out
        assert (tmp_path / "pq" / "flows" / f"group={line['group']}" / "part.parquet").is_file()
    assert [x["status"] for x in remote].count("error") == 1
    # the two workers shared the groups (each ran tasks; the scan's own, as the hashing and pairing ran there too)
    import dask.distributed as distributed

    with distributed.Client(dask_cluster) as client:
        executed = client.run(lambda dask_worker: dask_worker.state.executed_count)
    assert len(executed) == 2 and all(n > 0 for n in executed.values()), executed


@pytest.mark.service
def test_dask_local_starts_a_local_cluster_and_gives_the_same_lines(tmp_path):
    pytest.importorskip("dask.distributed")
    fleet, _expected = _fleet(tmp_path, ["blackhole_tls12", "refused"])
    code, local, text = scan(fleet, "--workers", "2")
    assert code == 1, text
    code, remote, text = scan(fleet, "--dask", "local", "--workers", "2")
    assert code == 1, text
    assert comparable(remote) == comparable(local)


@pytest.mark.service
def test_an_unreachable_scheduler_is_one_line_and_exit_2(tmp_path, monkeypatch):
    pytest.importorskip("dask.distributed")
    from pcapmtu.scan import dask_cluster

    monkeypatch.setattr(dask_cluster, "CONNECT_TIMEOUT_S", 3)  # nothing listens: no need to wait 20 s
    shutil.copytree(SAMPLES / "refused", tmp_path / "refused")
    result = runner.invoke(app, ["scan", str(tmp_path), "--dask", f"tcp://127.0.0.1:{_free_port()}"])
    assert result.exit_code == 2 and "cannot reach the scheduler" in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
