"""Run a suite's runs on a backend, skipping finished ones and recording failures.

Every run calls the same ``rlgen.agents.train`` as ``rlgen train``. Backends:

- ``local``: a process pool sized to the cores (each run uses one torch thread);
- ``ray``: Ray Tune's ``Tuner`` over the same function (``pip install rlgen[ray]``); ``address`` joins
  an existing cluster, whose nodes must see the output folder (shared storage).
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import signal
import socket
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlgen.agents import ConfigError, RunConfig
from rlgen.agents.rundir import ERROR_FILE, RunDir
from rlgen.atomic import LockedError, atomic_write_text, run_lock
from rlgen.bench.suite import SuiteRun
from rlgen.interrupt import sigterm_as_interrupt

logger = logging.getLogger(__name__)

BACKENDS = ("local", "ray")


@dataclass
class RunStatus:
    name: str
    status: str
    """"done" (this call), "skipped" (finished before), "busy" (another process trains it), "failed", or
    "archived-only" (not finished, and made only by earlier code: :attr:`SuiteRun.archived_only`)."""
    seconds: float = 0.0
    final_return: float | None = None
    error: str | None = None


def run_finished(config: RunConfig) -> bool:
    """A run counts as finished once its result.json reports the configured budget, and it is the run ``config``
    describes: a run directory of other settings or another budget under the same name never stands in for it
    (:meth:`RunDir.mismatch`)."""
    run = RunDir(config.run_dir)
    return run.finished(config.total_steps) and run.mismatch(config) is None


def run_one(config_dict: dict[str, Any]) -> dict[str, Any]:
    """Train (or resume) one run; never raises: a failure is returned and written to error.json."""
    import torch

    torch.set_num_threads(1)
    config = RunConfig.from_dict(config_dict)
    start = time.time()
    try:
        # held from the check on: a second suite on this folder reports the run busy and leaves it alone
        with run_lock(config.run_dir):
            return _train_locked(config, start)
    except LockedError as exc:  # not a failure: two workers of one suite on one folder share its runs this way
        return {"name": config.run_dir.name, "status": "busy", "seconds": 0.0, "error": str(exc)}


def _train_locked(config: RunConfig, start: float) -> dict[str, Any]:
    from rlgen.agents import train

    other = RunDir(config.run_dir).mismatch(config)
    if other is None and RunDir(config.run_dir).finished(config.total_steps):  # finished by another suite since
        return {"name": config.run_dir.name, "status": "skipped", "seconds": 0.0}
    if other is not None:
        # a run of something else under this name, finished or not: left as it is, neither resumed nor counted
        return {"name": config.run_dir.name, "status": "failed", "seconds": 0.0,
                "error": f"{other}; move it away or give the suite another --out"}
    # a run that stopped before its first checkpoint has nothing to resume: train() clears and starts it again
    resume = RunDir(config.run_dir).has_checkpoint()
    try:
        result = train(config, resume=resume)
    except Exception as exc:  # recorded, so one bad run does not stop the suite
        message = f"{type(exc).__name__}: {exc}".splitlines()[0]
        config.run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(config.run_dir / ERROR_FILE,
                          json.dumps({"error": message, "traceback": traceback.format_exc()}, indent=2))
        return {"name": config.run_dir.name, "status": "failed", "seconds": time.time() - start, "error": message}
    (config.run_dir / ERROR_FILE).unlink(missing_ok=True)
    return {"name": config.run_dir.name, "status": "done", "seconds": time.time() - start,
            "final_return": result.eval_mean_return}


def log_progress(done: int, total: int, start: float, status: RunStatus) -> None:
    """The default ``on_status``: one line per run as it ends ("[3/8] done    ppo_CartPole-v1_s2  return
    ...")."""
    elapsed = time.time() - start
    if status.final_return is not None:
        detail = f"return {status.final_return:.1f}"
    else:
        detail = status.error or "finished before"
    logger.info("[%d/%d] %-7s %s  %s  (%.0f s; suite %.1f min)", done, total, status.status, status.name,
                detail, status.seconds, elapsed / 60)


def run_suite_runs(
    runs: list[SuiteRun],
    backend: str = "local",
    workers: int | None = None,
    address: str | None = None,
    on_status: Callable[[int, int, float, RunStatus], None] = log_progress,
) -> list[RunStatus]:
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r}; choose one of: {', '.join(BACKENDS)}")
    start = time.time()
    statuses: list[RunStatus] = []
    todo = []
    for run in runs:
        if run_finished(run.config):
            statuses.append(RunStatus(run.config.run_dir.name, "skipped"))
            on_status(len(statuses), len(runs), start, statuses[-1])
        elif run.archived_only:  # today's code would make another run under its settings
            statuses.append(RunStatus(run.config.run_dir.name, "archived-only",
                                      error=f"not trained: archived only ({run.archived_only}); give --archive the "
                                            "run archive that holds it"))
            on_status(len(statuses), len(runs), start, statuses[-1])
        else:
            todo.append(run.config.to_dict())
    if not todo:
        return statuses
    workers = max(1, min(workers or os.cpu_count() or 1, len(todo)))
    results = _run_local(todo, workers) if backend == "local" else _run_ray(todo, workers, address)
    for result in results:
        statuses.append(RunStatus(**result))
        on_status(len(statuses), len(runs), start, statuses[-1])
    return statuses


def _run_local(todo: list[dict[str, Any]], workers: int):
    if workers == 1:
        for config in todo:
            yield run_one(config)
        return
    # spawn: fresh interpreters, no inherited torch/MuJoCo state from the parent; each worker dies with the
    # parent however the parent dies (die_with_parent), so no orphan trains on in a suite's run directories
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=die_with_parent, initargs=(os.getpid(),))
    with sigterm_as_interrupt():
        try:
            futures = [pool.submit(run_one, config) for config in todo]
            for future in as_completed(futures):
                yield future.result()
        except BaseException:
            # Stopped (Ctrl-C, kill): end the workers too, or they train on as orphans and write into the
            # run directories a resumed suite is using. Their runs resume from the last checkpoint.
            for process in list(getattr(pool, "_processes", {}).values()):
                process.terminate()
            pool.shutdown(wait=False, cancel_futures=True)
            raise
    pool.shutdown()


PARENT_POLL_SECONDS = 1.0


def die_with_parent(parent: int) -> None:
    """Make this process end when ``parent`` does, however it ends (kill -9 included): a benchmark worker that
    outlived its suite would train on in run directories a rerun needs, holding their locks.

    Linux delivers SIGKILL at the parent's death (prctl PR_SET_PDEATHSIG); everywhere, a daemon thread also
    checks the parent pid every second and ends the process once it has been re-parented. A worker killed
    mid-run resumes from its last checkpoint when the suite runs again."""
    if os.getppid() != parent:  # the parent is gone already
        os._exit(1)
    if os.name == "posix" and os.uname().sysname == "Linux":
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, int(signal.SIGKILL))  # 1: PR_SET_PDEATHSIG
        except (OSError, AttributeError):  # the watch below still works
            pass
        if os.getppid() != parent:  # died between the check and the prctl
            os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(PARENT_POLL_SECONDS)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="rlgen-parent-watch", daemon=True).start()


def die_with_process(pid: int, host: str) -> None:
    """End this process once process ``pid`` on ``host`` is gone (checked every second): a Ray trial's process
    is Ray's worker, not the driver's child, so the driver's death reaches it by this watch. A trial on another
    machine than the driver's cannot see its process table and is left to Ray."""
    if socket.gethostname() != host:
        return

    def gone() -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:  # alive, another user's
            return False
        return False

    def watch() -> None:
        while True:
            time.sleep(PARENT_POLL_SECONDS)
            if gone():
                os._exit(1)

    threading.Thread(target=watch, name="rlgen-driver-watch", daemon=True).start()


def _ray_trainable(params: dict[str, Any]) -> None:
    from ray import tune

    die_with_process(params["driver_pid"], params["driver_host"])
    tune.report(run_one(params["config"]))


def _run_ray(todo: list[dict[str, Any]], workers: int, address: str | None):
    try:
        import ray
        from ray import tune
    except ImportError:
        raise ConfigError("the ray backend needs Ray Tune: pip install 'rlgen[ray]'") from None
    started_here = not ray.is_initialized()
    if started_here:
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
    storage = Path(todo[0]["out_dir"]).parent / "ray_results"
    try:
        tuner = tune.Tuner(
            tune.with_resources(_ray_trainable, {"cpu": 1}),
            param_space={"config": tune.grid_search(todo), "driver_pid": os.getpid(),
                         "driver_host": socket.gethostname()},
            tune_config=tune.TuneConfig(max_concurrent_trials=None if address else workers),
            run_config=tune.RunConfig(storage_path=str(storage), name="suite", verbose=0),
        )
        grid = tuner.fit()
        for i in range(len(grid)):
            result = grid[i]
            metrics = result.metrics or {}
            if result.error is not None or "status" not in metrics:
                name = result.config["config"]["run_name"] if result.config else "?"
                yield {"name": name, "status": "failed", "error": f"ray trial failed: {result.error}".splitlines()[0]}
            else:
                yield {k: metrics[k] for k in ("name", "status", "seconds", "final_return", "error") if k in metrics}
    finally:
        if started_here:
            ray.shutdown()
