"""The report's figures drawn with a forked helper (render/rasterize.py): the same bytes as drawn alone, every
figure once and in order, a helper that dies or sends garbage costs nothing but time, and a parent that fails
leaves no child behind."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from matplotlib.figure import Figure

import pcapmtu
from pcapmtu.render import rasterize
from pcapmtu.render.report import write_report

DEMO = Path(__file__).resolve().parent.parent / "sample_pcaps" / "blackhole_tls12"
NOW = datetime(2026, 12, 2, tzinfo=UTC)

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="the helper is a fork: POSIX only")


def _line(n: int):
    """A small figure whose picture says which one it is."""

    def draw() -> Figure:
        fig = Figure(figsize=(2, 1), dpi=50)
        fig.subplots().plot(range(n + 2), [(i * n) % 7 for i in range(n + 2)])
        return fig

    return draw


def _children() -> set[int]:
    """This process's child processes, zombies included (/proc): other tests of the same run may have left
    some of their own, so a test compares the set before and after."""
    me, out = os.getpid(), set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # ended while being read
        if int(fields[1]) == me:
            out.add(int(stat.parent.name))
    return out


@pytest.fixture
def no_helper_left():
    """The test leaves no child of its own behind: every helper was reaped (or ended and reaped)."""
    before = _children()
    yield
    assert _children() <= before


def test_a_helper_draws_the_same_bytes_in_the_same_order(no_helper_left):
    figures = [(_line(n), n % 3 == 0) for n in range(7)]
    alone = rasterize.render_all(figures, helpers=0)
    shared = rasterize.render_all(figures, helpers=1)
    assert shared == alone
    assert len({r.png for r in alone}) == 7  # seven different pictures: an order mix-up would show
    assert [r.svg is not None for r in shared] == [n % 3 == 0 for n in range(7)]


def test_the_helper_takes_a_share_of_the_figures(no_helper_left):
    """Both processes draw: the figures name the process that drew them, and two PIDs are among them."""
    parent = os.getpid()
    drew: list[int] = []

    def slow(n: int):
        def draw() -> Figure:
            import time

            time.sleep(0.05)  # long enough that one process cannot take every figure before the other starts
            fig = Figure(figsize=(1, 1), dpi=20)
            fig.text(0, 0, str(os.getpid() == parent))
            drew.append(n)
            return fig

        return draw

    figures = [(slow(n), False) for n in range(6)]
    shared = rasterize.render_all(figures, helpers=1)
    by_parent = sum(r.png == rasterize.render(slow(0), False).png for r in shared)  # the picture of "True"
    assert len(drew) == 6 + by_parent  # this process drew those, and "True" once per comparison above
    assert 0 < by_parent < 6


def test_a_helper_that_dies_leaves_its_figures_to_the_parent(no_helper_left):
    parent = os.getpid()

    def dies_in_the_helper() -> Figure:
        if os.getpid() != parent:
            os._exit(3)
        return _line(4)()

    figures = [(_line(1), False), (dies_in_the_helper, False), (_line(2), False), (_line(3), True)]
    shared = rasterize.render_all(figures, helpers=1)
    assert shared == rasterize.render_all(
        [(_line(1), False), (_line(4), False), (_line(2), False), (_line(3), True)]
    )


def test_a_failing_parent_ends_its_helper(no_helper_left):
    """Every figure fails when the parent draws it. Which process takes which figure is a race, so the helper
    is slow (0.5 s a figure): the parent takes at least one of the six, wherever it stands in the queue."""
    parent = os.getpid()

    def fails_in_the_parent(n: int) -> Callable[[], Figure]:
        def draw() -> Figure:
            if os.getpid() == parent:
                raise RuntimeError("drawing failed")
            time.sleep(0.5)
            return _line(n)()

        return draw

    figures = [(fails_in_the_parent(n), False) for n in range(6)]
    with pytest.raises(RuntimeError, match="drawing failed"):
        rasterize.render_all(figures, helpers=1)


def test_a_started_drawing_goes_on_while_the_caller_works(tmp_path, no_helper_left):
    """`start` forks and the helper draws before `finish` is called: the caller's own work (the report's text
    files) runs alongside. The pictures are the same as drawn alone, in order."""
    parent, log = os.getpid(), tmp_path / "drawn"

    def logged(n: int) -> Callable[[], Figure]:
        def draw() -> Figure:
            if os.getpid() != parent:
                with open(log, "a") as fh:
                    fh.write(f"{n}\n")
            return _line(n)()

        return draw

    figures = [(logged(n), n == 2) for n in range(5)]
    with rasterize.start(figures, helpers=1) as drawing:
        deadline = time.monotonic() + 30
        while not log.exists() and time.monotonic() < deadline:  # the caller at work; the helper draws
            time.sleep(0.01)
        assert log.exists(), "the helper drew nothing before finish()"
        shared = drawing.finish()
    assert shared == rasterize.render_all([(_line(n), n == 2) for n in range(5)])


def test_a_caller_failing_before_finish_ends_the_helper(no_helper_left):
    def slow() -> Figure:
        time.sleep(0.5)
        return _line(1)()

    with (
        pytest.raises(RuntimeError, match="report.json failed"),
        rasterize.start([(slow, False)] * 6, helpers=1),
    ):
        raise RuntimeError("report.json failed")


def test_a_report_that_fails_while_the_helper_draws_leaves_no_helper(tmp_path, monkeypatch, no_helper_left):
    from pcapmtu.render import report

    analysis = pcapmtu.analyze(DEMO / "host.pcap", DEMO / "container.pcap")

    def full_disk(*_args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(report, "_atomic_json", full_disk)
    with pytest.raises(OSError, match="No space left"):
        write_report(analysis, tmp_path / "out", now=NOW, helpers=1)


def test_what_the_helper_sends_is_checked(monkeypatch, no_helper_left):
    """Anything but {figure number: Rendered} from the pipe is ignored, and the parent draws instead."""
    monkeypatch.setattr(rasterize.pickle, "dump", lambda obj, fh, protocol: fh.write(b"not a pickle"))
    figures = [(_line(n), False) for n in range(4)]
    assert rasterize.render_all(figures, helpers=1) == rasterize.render_all(figures)
    monkeypatch.undo()
    r, w = os.pipe()
    os.write(w, rasterize.pickle.dumps({0: ("png", None), "x": 1}))
    os.close(w)
    assert rasterize._collect(r) == {}


def test_the_report_is_the_same_with_a_helper(tmp_path, no_helper_left):
    """Every file of the demo's report, SVG copies included, byte for byte."""
    analysis = pcapmtu.analyze(DEMO / "host.pcap", DEMO / "container.pcap")

    def files(helpers: int) -> dict[str, str]:
        out = tmp_path / f"helpers-{helpers}"
        write_report(analysis, out, now=NOW, svg=True, helpers=helpers)
        return {
            str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in out.rglob("*")
            if p.is_file()
        }

    alone, shared = files(0), files(1)
    assert shared == alone
    assert {"report.html", "report.md", "report.json", "plots/timeline.png", "plots/timeline.svg"} <= set(
        alone
    )


def test_a_helper_prints_even_when_the_parent_s_stderr_was_locked_at_the_fork(
    monkeypatch, capfd, no_helper_left
):
    """A progress bar's thread may hold sys.stderr's lock when the helper is forked: what the helper prints goes
    to a stream of its own on descriptor 2, not wait forever on that lock (the test fails by alarm, not hang)."""
    import signal
    import sys
    import threading

    held = threading.Lock()
    held.acquire()

    class Stuck:
        def write(self, text: str) -> int:
            with held:  # as a BufferedWriter whose lock another thread held at the fork
                return len(text)

        def flush(self) -> None:
            pass

    parent = os.getpid()

    def warns_in_the_helper() -> Figure:
        if os.getpid() != parent:
            print("drawn in the helper", file=sys.stderr)  # as a warning or a log line of matplotlib's
        return _line(6)()

    monkeypatch.setattr("sys.stderr", Stuck())
    figures = [(warns_in_the_helper, False)] * 6

    def hung(*_args) -> None:
        raise TimeoutError("the helper waits on the parent's stderr lock")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(30)
    try:
        shared = rasterize.render_all(figures, helpers=1)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
        held.release()
    assert shared == rasterize.render_all([(_line(6), False)] * 6)
    monkeypatch.undo()
    assert "drawn in the helper" in capfd.readouterr().err  # the helper drew some, and its warning got out


def test_a_caller_that_ignores_sigchld_still_gets_every_figure(no_helper_left):
    """With SIGCHLD ignored the kernel reaps the helper itself: waiting for it finds nothing, and what it sent
    still counts."""
    import signal

    figures = [(_line(n), False) for n in range(5)]
    previous = signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    try:
        shared = rasterize.render_all(figures, helpers=1)
    finally:
        signal.signal(signal.SIGCHLD, previous)
    assert shared == rasterize.render_all(figures)
