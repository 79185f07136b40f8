"""The tz-aware UTC datetime columns repeat the epoch-second columns beside them exactly, in pandas and in the
Parquet export (where DuckDB must read them as TIMESTAMP WITH TIME ZONE).

blackhole_tls12 has DNS, an ICMP error, and a finding without frames (X001, host and container together)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import pcapmtu
from pcapmtu import schema
from support.environment import SAMPLES

# (table, datetime column, the epoch-seconds column it stands beside)
TIME_COLUMNS = [
    ("packets", "time", "ts"),
    ("flows", "first_time", "first_ts"),
    ("flows", "last_time", "last_ts"),
    ("dns", "time", "ts"),
    ("icmp", "time", "ts"),
]


@pytest.fixture(scope="module")
def tls12():
    return pcapmtu.read(SAMPLES / "blackhole_tls12" / "container.pcap")


@pytest.fixture(scope="module")
def nanosecond():
    return pcapmtu.read(SAMPLES / "nanosecond" / "host.pcap")


def _ns(times: pd.Series) -> np.ndarray:
    """Nanoseconds since the epoch, exactly."""
    return times.dt.as_unit("ns").astype("int64").to_numpy()


@pytest.mark.parametrize(("table", "column", "epoch"), TIME_COLUMNS)
def test_time_columns_are_utc_and_stand_beside_the_epoch_seconds(tls12, table, column, epoch):
    frame = getattr(tls12, table)
    assert len(frame), f"the sample has no {table} rows: the test would prove nothing"
    assert str(frame[column].dtype) == "datetime64[ns, UTC]"
    assert schema.TABLES[table][column][0] == schema.UTC
    cols = list(frame.columns)
    assert cols.index(column) == cols.index(epoch) + 1, f"{column} is not right after {epoch}"
    assert frame[column].notna().all()
    # the same instant as the float seconds (to the float's precision, well under a microsecond)
    assert np.abs(_ns(frame[column]) / 1e9 - frame[epoch].to_numpy()).max() < 1e-6


def test_times_are_exact_to_the_nanosecond(nanosecond):
    """A nanosecond pcap keeps its nanoseconds: the datetimes come from ts_ns, not from the float seconds."""
    p = nanosecond.packets
    assert (p["ts_ns"] % 1000 != 0).any(), "not a nanosecond capture"
    assert (_ns(p["time"]) == p["ts_ns"].to_numpy()).all()
    by_conn = p[p["conn"] >= 0].groupby("conn")["ts_ns"].agg(["min", "max"])
    flows = nanosecond.flows.set_index("conn")
    assert (_ns(flows["first_time"]) == by_conn["min"].reindex(flows.index).to_numpy()).all()
    assert (_ns(flows["last_time"]) == by_conn["max"].reindex(flows.index).to_numpy()).all()
    ts_of_frame = p.set_index("frame")["ts_ns"]
    for table in (nanosecond.dns, nanosecond.icmp):
        assert (_ns(table["time"]) == ts_of_frame.reindex(table["frame"]).to_numpy()).all()


def test_time_columns_without_rows_keep_their_dtype(tls12):
    lean = pcapmtu.read(SAMPLES / "blackhole_tls12" / "container.pcap", keep_packets=False)
    assert len(lean.packets) == 0 and str(lean.packets["time"].dtype) == "datetime64[ns, UTC]"
    assert (lean.flows["first_time"] == tls12.flows["first_time"]).all()
    empty = schema.empty(schema.ICMP)
    assert str(empty["time"].dtype) == "datetime64[ns, UTC]"


def test_findings_carry_the_time_of_their_first_frame(tls12):
    host = pcapmtu.read(SAMPLES / "blackhole_tls12" / "host.pcap")
    result = pcapmtu.analyze(host=host, container=tls12)
    f = result.findings
    assert str(f["time"].dtype) == "datetime64[ns, UTC]"
    assert list(f.columns).index("time") == list(f.columns).index("frames") + 1
    with_frames = f[f["frames"].map(len) > 0]
    assert set(with_frames["capture"]) == {"host", "container"}, "the test wants findings of both captures"
    for row in with_frames.itertuples():
        packets = result.captures[row.capture].packets.set_index("frame")
        assert row.time == packets["time"][min(row.frames)], row.code
    without = f[f["frames"].map(len) == 0]
    assert len(without) and without["time"].isna().all()


def test_parquet_time_columns_are_timestamp_with_time_zone_in_duckdb(tls12, nanosecond, tmp_path):
    duckdb = pytest.importorskip("duckdb")
    pytest.importorskip("pyarrow")
    pcapmtu.export([tls12, nanosecond], to=tmp_path)
    con = duckdb.connect()
    expected = [*TIME_COLUMNS, ("findings", "time", None)]
    for table, column, _epoch in expected:
        files = str(tmp_path / table / "*.parquet")
        rows = con.sql(f"DESCRIBE SELECT * FROM read_parquet('{files}', union_by_name = true)").fetchall()
        types = {r[0]: r[1] for r in rows}
        assert types[column] == "TIMESTAMP WITH TIME ZONE", (table, column, types[column])
    # the values: microseconds of ts_ns (the nanosecond capture's last three digits are cut, ts_ns keeps them)
    bad = con.sql(
        f"SELECT count(*) FROM read_parquet('{tmp_path}/packets/*.parquet') "
        "WHERE epoch_us(time) <> ts_ns // 1000"
    ).fetchall()[0][0]
    assert bad == 0
    # a finding's time is its first frame's packet time
    joined = con.sql(
        f"SELECT count(*), count(*) FILTER (WHERE f.time = p.time) "
        f"FROM read_parquet('{tmp_path}/findings/*.parquet') f "
        f"JOIN read_parquet('{tmp_path}/packets/*.parquet') p "
        "ON p.capture = f.capture AND p.frame = list_min(f.frames)"
    ).fetchall()[0]
    assert joined[0] >= 3 and joined[0] == joined[1]
