"""The report's figures as PNG (and SVG) bytes, drawn in this process or shared with one forked helper.

Drawing is most of what `analyze --out` adds to `analyze` on an incident-sized capture (~0.8 s for four
figures on this project's 2-CPU machine, after matplotlib's ~0.4 s import), and each figure is independent
of the others. So the command line lets one forked child draw alongside: both take the next figure from one
pipe of figure numbers (a read of one byte from a pipe is atomic, so no figure is drawn twice), the child
sends what it drew back as one pickle when the pipe is empty, and the parent draws any figure the child did
not deliver (it died, was killed, or sent something unreadable) itself. A fork shares the analysis with the
child at no cost (copy on write) and needs no pickling of it. The bytes are the same either way: every figure
is drawn from the analysis alone, in a fresh `Figure`.

`start` forks before either process has imported matplotlib, and returns: the helper imports it and draws
while the caller writes the report's text files, and `finish` joins in. On real-1m that overlap took ~0.18 s
off `analyze --out` (docs/performance.md, 0.9.7).

Only the command line asks for a helper: a library caller's process (a notebook kernel, a Dask worker) may
hold threads and sockets a fork would copy.
"""

from __future__ import annotations

import contextlib
import io
import os
import pickle
import signal
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from matplotlib.figure import Figure

MAX_FIGURES = 255  # one byte per figure number in the work pipe


class Rendered(NamedTuple):
    png: bytes
    svg: bytes | None  # only for the figures a vector copy was asked for


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity, as `taskset` or a container's cpuset set it)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def render(draw: Callable[[], Figure], svg: bool) -> Rendered:
    """One figure drawn and encoded; the figure is dropped on return (a big capture's figure holds its data)."""
    fig = draw()
    png = io.BytesIO()
    fig.savefig(png, format="png", metadata={"Software": None})
    vector = None
    if svg:
        from matplotlib import rc_context

        out = io.BytesIO()
        with rc_context({"svg.hashsalt": "pcapmtu"}):  # stable SVG ids, so reports diff cleanly
            fig.savefig(out, format="svg", metadata={"Date": None, "Creator": None})
        vector = out.getvalue()
    return Rendered(png.getvalue(), vector)


def render_all(figures: Sequence[tuple[Callable[[], Figure], bool]], helpers: int = 0) -> list[Rendered]:
    """Every (draw, with an SVG copy) of `figures` rendered, in order. `helpers`: forked processes that may
    draw alongside this one (0 or 1 are what is useful: figures are few; more than one is treated as one)."""
    return start(figures, helpers).finish()


def start(figures: Sequence[tuple[Callable[[], Figure], bool]], helpers: int = 0) -> Drawing:
    """`render_all`, begun: with a helper, it forks now and starts drawing, while this process goes on with
    other work (the report's text files) until it calls `finish`. The helper is forked before matplotlib is
    imported, so that import too runs alongside. Without a helper nothing is drawn before `finish`."""
    if helpers < 1 or len(figures) < 2 or len(figures) > MAX_FIGURES or not hasattr(os, "fork"):
        return Drawing(figures)
    work_r, work_w = os.pipe()
    os.write(work_w, bytes(range(len(figures))))  # far below a pipe's buffer: never blocks
    os.close(work_w)  # empty and closed: a read returns b"" once every figure is taken
    result_r, result_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the helper: draw, send, and leave without running anything of the parent's
        code = 1
        try:
            os.close(result_r)
            with contextlib.suppress(ValueError):  # only the main thread may set it; else it stays as it was
                signal.signal(signal.SIGINT, signal.SIG_DFL)  # Ctrl-C ends it with the parent, quietly
            _own_streams()
            done = _drain(work_r, figures)
            with os.fdopen(result_w, "wb") as fh:
                pickle.dump(done, fh, protocol=pickle.HIGHEST_PROTOCOL)
            code = 0
        finally:
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):
                    stream.flush()
            os._exit(code)
    os.close(result_w)
    return Drawing(figures, pid, work_r, result_r)


class Drawing:
    """Figures being drawn, maybe by a helper already; `finish` draws what is left here and returns them all
    in order. A caller that fails before `finish` calls `cancel` (or leaves a `with` block): the helper ends."""

    def __init__(
        self,
        figures: Sequence[tuple[Callable[[], Figure], bool]],
        pid: int = 0,
        work: int = -1,
        result: int = -1,
    ) -> None:
        self.figures, self.pid, self.work, self.result = figures, pid, work, result

    def finish(self) -> list[Rendered]:
        figures, done = self.figures, {}
        if self.pid:
            try:
                mine = _drain(self.work, figures)
            except BaseException:
                self.cancel()
                raise
            os.close(self.work)
            self.work = -1
            try:
                theirs = _collect(self.result)  # closes it
            except BaseException:  # interrupted while the helper still draws: it ends with us
                self.result = -1
                self.cancel()
                raise
            self.result = -1
            if _reap(self.pid) != 0:
                theirs = {}
            self.pid = 0
            done = {**theirs, **mine}
        return [done[i] if i in done else render(draw, svg) for i, (draw, svg) in enumerate(figures)]

    def cancel(self) -> None:
        for fd in (self.work, self.result):
            if fd >= 0:
                os.close(fd)
        self.work = self.result = -1
        if self.pid:
            _end(self.pid)
            self.pid = 0

    def __enter__(self) -> Drawing:
        return self

    def __exit__(self, *exc) -> None:
        self.cancel()


def _own_streams() -> None:
    """New sys.stdout and sys.stderr on copies of descriptors 1 and 2 (or /dev/null). Another thread of the
    parent, such as a progress bar refreshing, may have held the old objects' locks at the fork, and a
    warning printed by the helper would wait on them forever."""
    for name, fd in (("stdout", 1), ("stderr", 2)):
        try:
            stream = open(os.dup(fd), "w", buffering=1, encoding="utf-8", errors="backslashreplace")  # noqa: SIM115
        except OSError:
            stream = open(os.devnull, "w")  # noqa: SIM115
        setattr(sys, name, stream)


def _drain(work: int, figures: Sequence[tuple[Callable[[], Figure], bool]]) -> dict[int, Rendered]:
    """Take figure numbers from the work pipe until it is empty, drawing each."""
    done: dict[int, Rendered] = {}
    while token := os.read(work, 1):
        draw, svg = figures[token[0]]
        done[token[0]] = render(draw, svg)
    return done


def _collect(result: int) -> dict[int, Rendered]:
    """What the helper sent: {figure number: Rendered}, or nothing if it is not exactly that."""
    with os.fdopen(result, "rb") as fh:
        data = fh.read()
    try:
        got = pickle.loads(data)  # noqa: S301 - our own forked child wrote it, through a pipe only we hold
    except Exception:  # it died mid-write: the parent draws its figures
        return {}
    if not isinstance(got, dict) or not all(
        isinstance(k, int) and isinstance(v, Rendered) for k, v in got.items()
    ):
        return {}
    return got


def _end(pid: int) -> None:
    """Stop and reap the helper (the parent is leaving with an exception)."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    _reap(pid)


def _reap(pid: int) -> int:
    """Wait for the helper; its exit code (0 where a SIGCHLD set to be ignored reaped it already: what it
    sent is then trusted as far as _collect checked it, a complete pickle of the right shape)."""
    try:
        return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    except ChildProcessError:
        return 0
