"""The Ray engine: one Ray task per run, on a cluster or on a Ray instance started for the export.

A task on the driver's own node writes straight into the driver's staging folder, as a process
pool's worker does. A task on another node cannot: it runs in a temporary folder of its own node
and sends back the files it wrote with its result (through Ray's object store, one run's output at
a time), and the driver writes them where the local engines would have. Either way what gets
published is the same whatever ran it.

Runs given as local paths are only readable on this node: on a multi-node cluster, point the
export at the runs' URL (object storage) instead.
"""

from __future__ import annotations

import logging
import socket
import tempfile
from collections.abc import Generator, Sequence
from pathlib import Path
from typing import Any

from exporter.core.errors import UserError
from exporter.engines import Outcome, Task, guarded

CONNECT_TIMEOUT_S = 5.0
Files = list[tuple[str, bytes]]


def run_on_ray[T](
    tasks: Sequence[Task[T]], outbox: Path, *, workers: int | None, address: str | None
) -> Generator[tuple[int, Outcome[T]]]:
    """Submit the tasks (at most `workers` at once), yield (index, outcome) as they finish."""
    ray = _ray()
    started_here = _connect(ray, address)
    try:
        remote = ray.remote(num_cpus=1, max_retries=0)(_run_on_node)
        driver_node = driver_node_id(ray)
        limit = workers or len(tasks)
        queued = list(enumerate(tasks))
        running: dict[Any, int] = {}
        try:
            while queued or running:
                while queued and len(running) < limit:
                    index, task = queued.pop(0)
                    running[remote.remote(task, str(outbox), driver_node)] = index
                [ready], _ = ray.wait(list(running), num_returns=1)
                index = running.pop(ready)
                try:
                    outcome, files = ray.get(ready)
                except Exception as error:  # the worker died (out of memory, node lost): Ray's own words
                    yield (
                        index,
                        Outcome(error=f"its Ray task failed ({type(error).__name__}: {_first_line(error)})"),
                    )
                    continue
                _unpack(files, outbox)
                yield index, outcome
        finally:
            for reference in running:
                ray.cancel(reference, force=True)
    finally:
        if started_here:
            ray.shutdown()


def driver_node_id(ray: Any) -> str:
    """The Ray node this export's driver runs on: tasks landing there write its staging folder directly."""
    return str(ray.get_runtime_context().get_node_id())


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else "no message"


def _run_on_node[T](task: Task[T], outbox: str, driver_node: str) -> tuple[Outcome[T], Files]:
    """On the worker: on the driver's node, run the task into its staging folder (nothing to send
    back); elsewhere, into a folder of this node, then hand its files back."""
    import ray

    if ray.get_runtime_context().get_node_id() == driver_node:
        return guarded(task, Path(outbox)), []
    with tempfile.TemporaryDirectory(prefix="agentcap-task-") as scratch:
        outcome = guarded(task, Path(scratch))
        if outcome.error is not None:
            return outcome, []
        files = [
            (path.relative_to(scratch).as_posix(), path.read_bytes())
            for path in sorted(Path(scratch).rglob("*"))
            if path.is_file() and not path.is_symlink()
        ]
    return outcome, files


def _unpack(files: Files, outbox: Path) -> None:
    root = outbox.resolve()
    for relative, content in files:
        target = (root / relative).resolve()
        if not target.is_relative_to(root):
            raise UserError(f"a Ray task sent back {relative!r}, outside the export's staging folder")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise UserError("--engine ray needs Ray: pip install 'agentcap[ray]' (or ray)") from None
    return ray


def preflight(address: str | None) -> None:
    """Ray importable, and something listening at a HOST:PORT address (Ray itself retries for a minute)."""
    _ray()
    if address not in (None, "auto", "local") and not address.startswith("ray://"):
        _check_answers(address)


def _connect(ray: Any, address: str | None) -> bool:
    """Join `address` (`auto`: the cluster this machine is part of), or start a local instance.

    Returns whether this call started Ray (and so must stop it). A Ray already initialised in this
    process (a notebook, a test) is used as it is.
    """
    preflight(address)
    if ray.is_initialized():
        return False
    try:
        ray.init(
            address=address,
            include_dashboard=False if address is None else None,
            logging_level=logging.WARNING,
            log_to_driver=False,
        )
    except ConnectionError as error:
        where = f"at {address}" if address else "(RAY_ADDRESS or a local instance)"
        raise UserError(
            f"cannot join the Ray cluster {where}: {error}; start it (ray start --head) or fix --ray-address"
        ) from None
    return True


def _check_answers(address: str) -> None:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise UserError(f"--ray-address {address!r}: expected HOST:PORT, auto, or ray://HOST:PORT")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT_S):
            pass
    except OSError as error:
        raise UserError(
            f"--ray-address {address}: nothing answers there ({error.strerror or error}); "
            "start the cluster (ray start --head) or fix the address"
        ) from None
