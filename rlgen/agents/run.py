"""The training loop: config -> env stack -> SB3 learn (evaluation, checkpoints) -> run directory.

The parts live in their own modules: the run directory's layout (:mod:`rlgen.agents.rundir`), the env stack
and the model (:mod:`rlgen.agents.envstack`), evaluation and rollouts (:mod:`rlgen.agents.evaluation`), and
saving (:mod:`rlgen.agents.checkpoint`). This module opens a run (:func:`open_run`: threads, seeds, the env
stack with its reward wrappers, the evaluator; closed again whatever happens) and trains it: with SB3's
``learn`` (:func:`train`), or by behaviour cloning alone (``imitation: bc``, no env steps).
"""

from __future__ import annotations

import contextlib
import inspect
import json
import math
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gymnasium import spaces
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback, CallbackList
from stable_baselines3.common.logger import configure
from stable_baselines3.common.utils import set_random_seed
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

from rlgen.agents.checkpoint import load_replay_buffer, save_best, save_checkpoint, save_final
from rlgen.agents.config import ConfigError, RunConfig
from rlgen.agents.envstack import (
    NonFiniteAction,
    attach_reward_wrappers,
    build_model,
    load_run_demos,
    make_vec_env,
    vec_normalize,
)
from rlgen.agents.evaluation import Evaluator, eval_seed, torch_threads
from rlgen.agents.fast_policy import install_fast_forward
from rlgen.agents.model_file import load_model
from rlgen.agents.normalization import load_vecnormalize_stats
from rlgen.agents.rundir import (
    BC_FILE,
    CONFIG_FILE,
    MODEL_FILE,
    MONITOR_DIR,
    REPLAY_FILE,
    VECNORM_FILE,
    RunDir,
)
from rlgen.atomic import LockedError, atomic_write_bytes, atomic_write_text, run_lock
from rlgen.reward_wrapper import LOG_EVERY, RewardWrapper
from rlgen.versions import code_version, package_versions


@dataclass
class RunResult:
    """What a finished run reports; the same numbers are in ``run_dir/result.json``."""

    run_dir: Path
    timesteps: int
    eval_mean_return: float
    eval_std_return: float
    wall_time: float
    learn_time: float = 0.0
    """Seconds inside SB3's ``learn`` in this session (periodic evaluation and checkpoints included)."""
    eval_history: list[dict[str, float]] = field(default_factory=list)

    versions: dict[str, str] = field(default_factory=dict)
    """The package versions the run finished under (rlgen.versions)."""

    code: dict[str, str | bool] = field(default_factory=dict)
    """rlgen's version and git commit of the run's last training session (:func:`rlgen.versions.code_version`,
    taken as the session started)."""
    code_sessions: list[dict[str, Any]] = field(default_factory=list)
    """The same for every session of a resumed run, each with the env step it started from (``from_step``)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_dir": str(self.run_dir),
            "timesteps": self.timesteps,
            "eval_mean_return": self.eval_mean_return,
            "eval_std_return": self.eval_std_return,
            "wall_time": self.wall_time,
            "learn_time": self.learn_time,
            "versions": self.versions,
            "code": self.code,
            "code_sessions": self.code_sessions,
        }


@dataclass
class OpenRun:
    """A run being trained: its directory, env stack (the reward wrappers innermost first) and evaluator."""

    config: RunConfig
    run: RunDir
    venv: VecEnv
    wrappers: list[RewardWrapper]
    evaluator: Evaluator
    start: float
    code_sessions: list[dict[str, Any]] = field(default_factory=list)
    """The code of each training session, this one last (see :attr:`RunResult.code_sessions`)."""

    def finish(self, model: BaseAlgorithm, history: list[dict[str, float]], learn_time: float) -> RunResult:
        last = history[-1]
        result = RunResult(self.run.path, int(model.num_timesteps), last["mean_return"], last["std_return"],
                           time.time() - self.start, learn_time, history, package_versions(),
                           _without_step(self.code_sessions[-1]) if self.code_sessions else code_version(),
                           self.code_sessions)
        atomic_write_text(self.run.result_file, json.dumps(result.to_dict(), indent=2))
        return result


def _from_step(session: dict[str, Any]) -> int:
    try:
        return int(session.get("from_step", 0))
    except (TypeError, ValueError):
        return 0


def _without_step(session: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in session.items() if key != "from_step"}


@contextlib.contextmanager
def open_run(config: RunConfig, resume: bool = False, monitor: bool = True,
             monitor_t_start: float | None = None, start_steps: int = 0) -> Iterator[OpenRun]:
    """Set up a run (torch threads, seeds, the env stack, the evaluator) and take it down again afterwards,
    however the block ends; ``monitor`` keeps training episodes in the run's monitor/ folder (a resumed run's
    files appended to, with its Monitor clock started at ``monitor_t_start``); ``start_steps``: the env steps a
    resumed run had, from which the env stack's messages count."""
    run = RunDir(config.run_dir)
    with torch_threads(config.torch_threads):
        set_random_seed(config.seed)
        start = time.time()
        venv = make_vec_env(config, run.monitor_dir if monitor else None, append=resume, t_start=monitor_t_start,
                            start_steps=start_steps)
        evaluator = None
        try:
            venv, wrappers = attach_reward_wrappers(venv, config)
            if config.normalize:
                venv = vec_normalize(venv, config, norm_reward=config.norm_reward)
            evaluator = Evaluator(config, seed=eval_seed(config))
            yield OpenRun(config, run, venv, wrappers, evaluator, start)
        finally:
            if evaluator is not None:
                evaluator.close()
            venv.close()


# -- train ---------------------------------------------------------------------------------------
def train(config: RunConfig, resume: bool = False) -> RunResult:
    """Train one run; with ``resume``, continue the run in ``config.run_dir`` from its checkpoint (with the same
    settings: see :meth:`rlgen.agents.rundir.RunDir.resume_refusal`).

    ``config.imitation == "bc"`` runs behaviour cloning alone: no env steps, ``timesteps`` 0. One process at a
    time trains into a run directory: a second gets a ConfigError naming the first's pid.
    """
    config.validated()
    if not resume:
        config.refuse_unused_settings()
    run = RunDir(config.run_dir)
    for folder in (run.path, *run.path.parents):
        if folder.exists() and not folder.is_dir():
            raise ConfigError(f"the run directory {run.path} cannot be made: {folder} is a file")
    try:
        with run_lock(config.run_dir):  # held from the checks on: another process may be writing there
            _check_start(run, config, resume)
            return _clone(config) if config.imitation == "bc" else _learn(config, resume)
    except LockedError as exc:
        raise ConfigError(str(exc)) from None


def _check_start(run: RunDir, config: RunConfig, resume: bool) -> None:
    """ConfigError if ``config`` cannot start (or, with ``resume``, continue) the run in ``run``. A start that
    never reached a checkpoint (a setting the agent rejected, a kill before the first checkpoint) is cleared
    and started again: there is nothing in it to resume or to lose."""
    if resume:
        refusal = run.resume_refusal(config)
        if refusal is not None:
            raise ConfigError(refusal)
    elif run.started():
        raise ConfigError(f"run directory {run.path} already holds a run; resume it or choose another run_name "
                          "(--run-name)")
    elif run.holds_run():
        run.clear_unstarted()


def train_bc(config: RunConfig, resume: bool = False) -> RunResult:
    """Behaviour cloning alone (``config.imitation`` "bc"): :func:`train` of such a config."""
    if config.imitation != "bc":
        raise ConfigError(f"train_bc trains behaviour-cloning runs (imitation: bc), not imitation "
                          f"{config.imitation!r}")
    return train(config, resume)


def _learn(config: RunConfig, resume: bool) -> RunResult:
    run = RunDir(config.run_dir)
    created = not resume and not run.path.exists()
    run.path.mkdir(parents=True, exist_ok=True)
    done = run.checkpoint_timesteps() if resume else None
    # the code of each session: the earlier ones' from the checkpoint (those before its step), then this one's
    sessions = [entry for entry in run.checkpoint_code() if _from_step(entry) < done] if done is not None else []
    if done and not sessions:  # a checkpoint from before the code was kept: its steps' code is not known
        sessions = [{"from_step": 0}]
    sessions.append({"from_step": done or 0, **code_version()})
    # the episodes played after the checkpoint are played again: the training-episode log forgets them
    before_resume = _resume_rewrites(run) if resume else {}
    t_start = run.trim_monitor_files(done, config.n_envs) if done is not None else None
    set_up = False
    try:
        with open_run(config, resume, monitor_t_start=t_start, start_steps=done or 0) as session:
            session.code_sessions = sessions
            run.record_demos(config, resume)
            # saved once the wrappers accepted their settings, so a bad setting can be fixed and re-run
            config.save(run.config_file)
            for wrapper in session.wrappers:
                wrapper.start_log(run.path, keep_until=done)
            venv = session.venv
            history: list[dict[str, float]] = []
            if resume:
                assert done is not None
                ckpt = run.checkpoint_files
                model = load_model(config, ckpt / MODEL_FILE, env=venv)
                if model.num_timesteps != done:
                    raise ConfigError(f"{ckpt / MODEL_FILE} holds a model at {model.num_timesteps:,} env steps where "
                                      f"{run.progress_file} names {done:,}: the checkpoint cannot be trusted; start "
                                      "the run again under another run_name (--run-name)")
                if (ckpt / REPLAY_FILE).is_file():
                    load_replay_buffer(model, ckpt / REPLAY_FILE)
                if isinstance(venv, VecNormalize):
                    load_vecnormalize_stats(venv, ckpt / VECNORM_FILE)
                for wrapper in session.wrappers:
                    try:
                        wrapper.load_state(ckpt)
                    except ValueError as exc:
                        raise ConfigError(str(exc)) from None
                history = [row for row in run.read_eval_history() if row["timesteps"] <= done]
                run.drop_best_after(done)
                session.start -= history[-1]["wall_time"] if history else 0.0
            else:
                model = build_model(config, venv)
                if config.bc_pretrain:
                    stats = pretrain_with_demos(model, venv, config)
                    atomic_write_text(run.path / BC_FILE, json.dumps(stats, indent=2))
            model.set_logger(configure(str(run.tb_dir), ["tensorboard"]))
            install_fast_forward(model.policy)  # the same numbers at each env step, with less overhead (plain MLPs only)

            run_callback = RunCallback(config, run, session.evaluator, history, session.start, session.wrappers,
                                       sessions)
            set_up = True  # from here a failure may leave something to keep (a checkpoint, the logs of steps)
            remaining = config.total_steps - model.num_timesteps
            learn_time = 0.0
            if remaining > 0:
                learn_start = time.perf_counter()
                with unchecked_distributions(), nan_probabilities_named(model, config.env_id):
                    model.learn(
                        remaining,
                        callback=CallbackList([*(wrapper.callback for wrapper in session.wrappers), run_callback]),
                        reset_num_timesteps=not resume,
                        progress_bar=config.progress_bar,
                        **_log_interval(model),
                    )
                learn_time = time.perf_counter() - learn_start
            else:
                run_callback.init_callback(model)
                if len(sessions) > 1 and _from_step(sessions[-1]) >= model.num_timesteps:
                    sessions.pop()  # this session trains nothing: the run's code is still the last one's
            if not history or history[-1]["timesteps"] < model.num_timesteps:
                run_callback.evaluate()
            if remaining > 0:
                model.logger.dump(model.num_timesteps)  # the final evaluation, and what SB3 recorded since its last line
            save_checkpoint(model, run, history, session.wrappers, sessions)
            save_final(model, run, session.wrappers)
        return session.finish(model, history, learn_time)
    except BaseException:
        if created and not set_up:  # the env, a wrapper or the agent refused the settings: no run directory
            # of a run that never started is left
            shutil.rmtree(run.path, ignore_errors=True)
        elif resume and not set_up:  # a resume that failed before training (a bad checkpoint, say) changes nothing
            _restore_rewrites(run, before_resume)
        raise


# files a resume rewrites before it has loaded the checkpoint (trimmed to its step, or saved again)
_RESUME_REWRITES = (CONFIG_FILE, f"{MONITOR_DIR}/*.monitor.csv", "*_log.jsonl")


def _resume_rewrites(run: RunDir) -> dict[Path, bytes]:
    return {path: path.read_bytes() for pattern in _RESUME_REWRITES for path in run.path.glob(pattern)
            if path.is_file()}


def _restore_rewrites(run: RunDir, before: dict[Path, bytes]) -> None:
    """Put the files :func:`_resume_rewrites` read back as they were; remove those of the pattern made since."""
    for pattern in _RESUME_REWRITES:
        for path in run.path.glob(pattern):
            if path not in before:
                path.unlink(missing_ok=True)
    for path, data in before.items():
        if not path.is_file() or path.read_bytes() != data:
            atomic_write_bytes(path, data)


@contextlib.contextmanager
def unchecked_distributions() -> Iterator[None]:
    """torch.distributions without argument checks inside the block (restored after): a Normal checks its
    parameters and every sample's support at each env step, ~a quarter of a small policy's forward pass.
    Nothing numeric changes; a diverged policy's NaN action is caught by FiniteGuard instead."""
    import torch

    before = torch.distributions.Distribution._validate_args
    torch.distributions.Distribution.set_default_validate_args(False)
    try:
        yield
    finally:
        torch.distributions.Distribution.set_default_validate_args(before)


@contextlib.contextmanager
def nan_probabilities_named(model: BaseAlgorithm, env_id: str) -> Iterator[None]:
    """A diverged policy over discrete actions fails inside torch's sampler, before FiniteGuard sees an action
    (torch.multinomial: "probability tensor contains either inf, nan or element < 0"): the same one-line error
    as a NaN Box action."""
    try:
        yield
    except RuntimeError as exc:
        if "probability tensor contains" not in str(exc):
            raise
        raise NonFiniteAction(f"the policy's action probabilities on {env_id} are not finite at env step "
                              f"{model.num_timesteps}: its training diverged (the run's last checkpoint is "
                              f"kept)") from None


# -- behaviour cloning -----------------------------------------------------------------------------
def pretrain_with_demos(model: BaseAlgorithm, venv: VecEnv, config: RunConfig) -> dict[str, float]:
    """Behaviour-clone ``model``'s policy on the run's demos (``config.bc_kwargs``), in place
    (:func:`rlgen.imitation.clone_demos`: behind VecNormalize its statistics start as the demos')."""
    from rlgen.imitation import clone_demos

    augment = None
    observation_space = model.observation_space
    if config.imitation == "infogail":  # the policy sees [obs, one-hot code]; the demos hold no codes
        from rlgen.imitation.infogail import random_codes

        n_modes = int(config.imitation_kwargs["n_modes"])
        assert isinstance(observation_space, spaces.Box)
        observation_space = spaces.Box(observation_space.low[:-n_modes], observation_space.high[:-n_modes],
                                           dtype=observation_space.dtype)
        augment = random_codes(n_modes, seed=config.seed)
    demos = load_run_demos(config, observation_space, model.action_space)
    kwargs = {"seed": config.seed, "progress_bar": config.progress_bar, **config.bc_kwargs}
    try:
        return clone_demos(model.policy, demos, venv if isinstance(venv, VecNormalize) else None,  # type: ignore[arg-type]
                           augment=augment, **kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"bc: {exc}".splitlines()[0]) from None


def _clone(config: RunConfig) -> RunResult:
    """Behaviour cloning alone: fit the policy to the demos, evaluate it, and write a run directory that
    ``evaluate``/``rlgen eval`` read like any other. Nothing is written unless the cloning succeeds."""
    run = RunDir(config.run_dir)
    with open_run(config, monitor=False) as session:
        model = build_model(config, session.venv)
        learn_start = time.perf_counter()
        stats = pretrain_with_demos(model, session.venv, config)
        learn_time = time.perf_counter() - learn_start
        run.path.mkdir(parents=True, exist_ok=True)
        run.record_demos(config)
        config.save(run.config_file)
        session.evaluator.sync(session.venv)
        returns = session.evaluator.returns(model, config.eval_episodes)
        history = [{"timesteps": 0.0, "mean_return": float(returns.mean()), "std_return": float(returns.std()),
                    "episodes": float(len(returns)), "wall_time": time.time() - session.start}]
        run.write_eval_history(history)
        atomic_write_text(run.path / BC_FILE, json.dumps(stats, indent=2))
        save_final(model, run, session.wrappers)
    return session.finish(model, history, learn_time)


# -- during learning -------------------------------------------------------------------------------
class RunCallback(BaseCallback):
    """Periodic evaluation (to eval.csv and TensorBoard) and resumable checkpoints."""

    def __init__(self, config: RunConfig, run: RunDir, evaluator: Evaluator,
                 history: list[dict[str, float]], start_time: float, wrappers: list[RewardWrapper] | None = None,
                 code_sessions: list[dict[str, Any]] | None = None):
        super().__init__()
        self.wrappers = wrappers or []
        self.code_sessions = code_sessions
        self.config = config
        self.run = run
        self.evaluator = evaluator
        self.history = history
        self.start_time = start_time
        self._next_eval = self._next_checkpoint = math.inf
        # a new best must beat every evaluation on record (a run resumed from before best/ was kept has
        # rows without a model: their policies cannot become the best, but they set the bar)
        self.best_return = max([run.read_best().get("mean_return", -math.inf),
                                *(row["mean_return"] for row in history)])

    def _init_callback(self) -> None:
        self._next_eval = self._next_multiple_from(self.config.eval_freq)
        self._next_checkpoint = self._next_multiple_from(self.config.checkpoint_freq)

    def _next_multiple_from(self, freq: int) -> float:
        return math.inf if freq <= 0 else (self.model.num_timesteps // freq + 1) * freq

    def _on_step(self) -> bool:
        return True

    def _on_rollout_start(self) -> None:
        # Evaluations and checkpoints fall between rollouts: the policy has taken its update on every step
        # counted so far (an evaluation in the middle of the rollout that reaches its step would score the policy
        # of before that rollout's update, and a run's last row would not be its final model), reward wrappers
        # have finished their rollout-end work, and a resumed run collects whole rollouts from the same step count
        # as an uninterrupted one (a mid-rollout checkpoint would drop the partial rollout and shift every later
        # one).
        if self.num_timesteps >= self._next_eval:
            self._next_eval = self._next_multiple_from(self.config.eval_freq)
            self.evaluate()
        if self.num_timesteps >= self._next_checkpoint:
            self._next_checkpoint = self._next_multiple_from(self.config.checkpoint_freq)
            self.checkpoint()

    def evaluate(self) -> dict[str, float]:
        self.evaluator.sync(self.model.get_env())
        returns = self.evaluator.returns(self.model, self.config.eval_episodes)
        row = {
            "timesteps": float(self.num_timesteps),
            "mean_return": float(returns.mean()),
            "std_return": float(returns.std()),
            "episodes": float(len(returns)),
            "wall_time": time.time() - self.start_time,
        }
        self.history.append(row)
        self.logger.record("eval/mean_reward", row["mean_return"])
        self.logger.record("eval/std_reward", row["std_return"])
        self.run.write_eval_history(self.history)
        if row["mean_return"] > self.best_return:
            self.best_return = row["mean_return"]
            save_best(self.model, self.run, row)
        return row

    def checkpoint(self) -> None:
        save_checkpoint(self.model, self.run, self.history, self.wrappers, self.code_sessions)


def _log_interval(model: BaseAlgorithm) -> dict[str, int]:
    """``learn(log_interval=...)`` for an on-policy agent: at least one log line per LOG_EVERY transitions
    (SB3's A2C default, every 100 of its 5-step rollouts, writes nothing for the first 500 steps per env);
    never less often than SB3's own default (PPO and TRPO: every rollout). Off-policy: SB3's default."""
    n_steps = getattr(model, "n_steps", None)
    if n_steps is None or getattr(model, "rollout_buffer", None) is None:
        return {}
    default = inspect.signature(model.learn).parameters["log_interval"].default
    return {"log_interval": max(1, min(default, LOG_EVERY // (n_steps * model.n_envs)))}
