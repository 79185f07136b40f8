"""The local engine: a pool of worker processes, one per core by default.

Workers are forked from a fork server that has pcapmtu's analysis loaded once (no import per worker and no
fork of the main process's threads), and without pyarrow unless the scan writes Parquet (lean_worker.py):
a worker holds what one `pcapmtu analyze` holds. Each worker analyses one group at a time, within its share of the
memory (`worker_memory`). A worker the OS kills (out of memory, a crash) breaks the pool for every group in
flight: those groups are run again, each in a pool of its own, so only the group that kills its worker
again gets an error line.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool

from ..ingest.budget import default_max_memory

PRELOAD = ["pcapmtu.scan.job", "pcapmtu.diagnose.analysis"]  # not render.report: matplotlib only with --out
WORKER_DIED = (
    "the worker process analysing this group died (killed by the OS: out of memory?); "
    "run it alone with `pcapmtu analyze`, or lower --workers"
)


def cores() -> int:
    """The cores this process may run on (a container's CPU set, not the machine's)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def worker_memory(workers: int) -> int:
    """Each worker's share of the memory available now: the read budget of one group (ingest/budget.py)."""
    return default_max_memory() // max(workers, 1)


class LocalEngine:
    """Runs functions in worker processes: `map` in order, `run_all` as each finishes."""

    name = "local"
    died_message = WORKER_DIED

    def __init__(self, workers: int, parquet: bool = True) -> None:
        self.workers = workers
        self._context = multiprocessing.get_context("forkserver")
        self._context.set_forkserver_preload(PRELOAD if parquet else ["pcapmtu.scan.lean_worker", *PRELOAD])
        self._pool: ProcessPoolExecutor | None = None

    def _new_pool(self, workers: int) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(max_workers=workers, mp_context=self._context)

    def map(self, fn: Callable, items: list) -> list:
        if not items:
            return []
        pool = self._pool = self._pool or self._new_pool(self.workers)
        return list(pool.map(fn, items, chunksize=max(1, len(items) // (4 * self.workers))))

    def run_all(
        self, fn: Callable, calls: list[tuple], on_death: Callable[[int], object]
    ) -> Iterator[tuple[int, object]]:
        """(index, result) of each `fn(*calls[index])` as it finishes; `on_death(index)` is the result of a
        call whose worker died twice."""
        pool = self._pool = self._pool or self._new_pool(self.workers)
        futures: dict[Future, int] = {pool.submit(fn, *args): i for i, args in enumerate(calls)}
        again: list[int] = []
        for future in as_completed(futures):
            i = futures[future]
            try:
                yield i, future.result()
            except BrokenProcessPool:
                again.append(i)
        if again:  # the pool is broken: each of these alone in a fresh pool of one worker
            self._pool.shutdown(cancel_futures=True)
            self._pool = None
            for i in sorted(again):
                with self._new_pool(1) as alone:
                    try:
                        yield i, alone.submit(fn, *calls[i]).result()
                    except BrokenProcessPool:
                        yield i, on_death(i)

    def close(self, interrupted: bool = False) -> None:
        """Stop the pool; `interrupted` (Ctrl-C): at once, ending the workers' groups in flight by PID."""
        if self._pool is not None:
            if interrupted:
                workers = list(
                    (self._pool._processes or {}).values()
                )  # the pool has no public handle on them
                self._pool.shutdown(wait=False, cancel_futures=True)
                for worker in workers:
                    worker.terminate()
                for worker in workers:
                    worker.join(5)
            else:
                self._pool.shutdown(cancel_futures=True)
            self._pool = None
