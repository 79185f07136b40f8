"""The distributed engine: the same per-group jobs (job.py) as Dask tasks on a Dask distributed cluster.

`--dask tcp://SCHEDULER:8786` joins a running cluster (dask-kubernetes, dask-jobqueue, `dask scheduler` +
`dask worker`); `--dask local` starts a `LocalCluster` of worker processes on this machine. Workers open the
captures by the paths the scan found (made absolute): every worker must see them at the same place, as it
must see `--out` and `--parquet` (a shared file system). Dask is imported only here, only with --dask.

A worker's memory budget is 3/4 of its own memory limit (`dask worker --memory-limit`) unless --max-memory
says otherwise. A group whose worker dies is retried by Dask on another worker; one that kills workers
again (Dask's `KilledWorker`) gets its error line, like any other failure.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from ..errors import UsageError
from . import job
from .groups import Group

CONNECT_TIMEOUT_S = 20
WORKER_DIED = (
    "the Dask workers analysing this group died (Dask gave up: KilledWorker); run it alone with "
    "`pcapmtu analyze`, or give the workers more memory (dask worker --memory-limit)"
)


def _client_module():
    try:
        import dask.distributed as distributed
    except ImportError:
        raise UsageError("--dask needs Dask's distributed scheduler: pip install 'pcapmtu[fleet]'") from None
    return distributed


def run_on_worker(group: Group, digests: dict[str, str], options: job.JobOptions) -> dict:
    """job.run with the worker's memory share as the read budget when none was given."""
    if options.max_memory is None:
        try:
            from dask.distributed import get_worker

            limit = get_worker().memory_manager.memory_limit
        except (ImportError, ValueError, AttributeError):
            limit = None
        if limit:
            options = job.with_options(options, max_memory=int(limit * 0.75))
    return job.run(group, digests, options)


class DaskEngine:
    """A Dask client: `map` in order, `run_all` as each task finishes."""

    name = "dask"
    died_message = WORKER_DIED

    def __init__(self, address: str, workers: int | None = None) -> None:
        distributed = _client_module()
        self._cluster = None
        try:
            if address == "local":
                import dask

                from .local import cores

                # Dask samples each task's stack every 10 ms for its dashboard; a group's analysis is long
                # pure-Python and numpy work, and the sampling thread competes with it for the GIL
                with dask.config.set({"distributed.worker.profile.enabled": False}):
                    self._cluster = distributed.LocalCluster(
                        n_workers=workers or cores(),
                        threads_per_worker=1,  # the analysis holds the GIL: one group per process
                        processes=True,
                        host="127.0.0.1",  # this machine's cluster: nothing listens beyond it
                        dashboard_address="127.0.0.1:0",  # its HTTP endpoints open anyway, never on :8787
                    )
                self.client = distributed.Client(self._cluster)
            else:
                self.client = distributed.Client(address, timeout=CONNECT_TIMEOUT_S)
        except (OSError, TimeoutError) as exc:
            self.close()
            raise UsageError(f"--dask {address}: cannot reach the scheduler ({exc})") from None
        self.address = address
        self._distributed = distributed

    @property
    def workers(self) -> int:
        return len(self.client.scheduler_info().get("workers", {}))

    def map(self, fn: Callable, items: list) -> list:
        if not items:
            return []
        return self.client.gather(self.client.map(fn, items, pure=False))

    def run_all(
        self, fn: Callable, calls: list[tuple], on_death: Callable[[int], object]
    ) -> Iterator[tuple[int, object]]:
        if fn is job.run:
            fn = run_on_worker
        futures = {}
        for i, args in enumerate(calls):
            key = f"pcapmtu-scan-{args[0].id}-{job.group_key(*args)[:12]}"
            futures[self.client.submit(fn, *args, key=key, pure=False)] = i
        for future in self._distributed.as_completed(list(futures)):
            i = futures[future]
            try:
                yield i, future.result()
            except self._distributed.KilledWorker:
                yield i, on_death(i)
            finally:
                future.release()

    def close(self, interrupted: bool = False) -> None:
        """Disconnect (and stop a `--dask local` cluster); tasks in flight on a shared cluster are its own."""
        client = getattr(self, "client", None)
        if client is not None:
            client.close()
        if self._cluster is not None:
            self._cluster.close()
            self._cluster = None
