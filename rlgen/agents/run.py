"""The run loop: config -> env stack -> SB3 learn (evaluation, checkpoints) -> run directory.

A run directory holds everything needed to resume or evaluate a run::

    config.yaml          the resolved RunConfig
    model.zip            the final SB3 model
    vecnormalize.npz     VecNormalize statistics (loaded without pickle)
    checkpoint/          the latest resumable state (model, statistics, progress; an off-policy agent's
                         replay buffer as replay_buffer.npz; reward wrappers' states)
    vime.pt, ...         each reward wrapper's final state; vime_log.jsonl / density_log.jsonl: a bonus's
                         values per rollout or per 2,048 steps if rollouts are shorter (bonus
                         percentiles, information gain, model loss, ...)
    best/                the policy of the best periodic evaluation so far (model.zip, vecnormalize.npz as
                         they were then, best.json: its step count and mean return); `rlgen eval --best`
    eval.csv             evaluation history: timesteps, mean/std of the true env return
    learning_curve.png   evaluation and training returns against steps
    monitor/             per-env episode logs (SB3 Monitor)
    tb/                  TensorBoard logs
    result.json          final metrics, written when the run finishes
"""

from __future__ import annotations

import csv
import inspect
import io
import json
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback, CallbackList
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.logger import configure
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.preprocessing import is_image_space
from stable_baselines3.common.running_mean_std import RunningMeanStd
from stable_baselines3.common.utils import set_random_seed
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecEnv, VecEnvWrapper, VecNormalize

from rlgen.agents.config import ConfigError, RunConfig, algo_class
from rlgen.agents.normalization import load_vecnormalize_stats, save_vecnormalize_stats
from rlgen.atomic import (
    LockedError,
    atomic_dir,
    atomic_write,
    atomic_write_bytes,
    atomic_write_text,
    file_sha256,
    run_lock,
)
from rlgen.envs.progress import GOAL_FRACTION, MAX_GOAL_FRACTION, EpisodeMax, reports_goal_fraction
from rlgen.envs.quiet import make as quiet_make

CONFIG_FILE = "config.yaml"
MODEL_FILE = "model.zip"
REPLAY_FILE = "replay_buffer.npz"
_REPLAY_ARRAYS = ("observations", "next_observations", "actions", "rewards", "dones", "timeouts")
_RUN_IDENTITY = ("algo", "env_id", "n_envs", "bonus", "imitation")
VECNORM_FILE = "vecnormalize.npz"
CHECKPOINT_DIR = "checkpoint"
EVAL_FILE = "eval.csv"
RESULT_FILE = "result.json"
PLOT_FILE = "learning_curve.png"
BC_FILE = "bc.json"
BEST_DIR = "best"
BEST_FILE = "best.json"
EVAL_FIELDS = ("timesteps", "mean_return", "std_return", "episodes", "wall_time")

_ACTIVATIONS = {"tanh": torch.nn.Tanh, "relu": torch.nn.ReLU, "elu": torch.nn.ELU, "leaky_relu": torch.nn.LeakyReLU}


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

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_dir": str(self.run_dir),
            "timesteps": self.timesteps,
            "eval_mean_return": self.eval_mean_return,
            "eval_std_return": self.eval_std_return,
            "wall_time": self.wall_time,
            "learn_time": self.learn_time,
        }


# -- env stack -----------------------------------------------------------------------------------
def make_env_fn(env_id: str, env_kwargs: dict[str, Any], monitor_file: str | None, append: bool) -> Callable:
    def make() -> gym.Env:
        import rlgen.envs  # noqa: F401  (fresh sub-processes need the registrations)

        env = quiet_make(env_id, **env_kwargs)
        keywords: tuple[str, ...] = ()
        if reports_goal_fraction(env):  # a column of how near each training episode came to the goal
            env, keywords = EpisodeMax(env, GOAL_FRACTION), (MAX_GOAL_FRACTION,)
        return Monitor(env, filename=monitor_file, override_existing=not append, info_keywords=keywords)

    return make


class NonFiniteEnvOutput(ConfigError):
    """An env returned a NaN or infinite reward or observation."""


class FiniteGuard(VecEnvWrapper):
    """Stops a run at the first non-finite reward or observation the env returns, naming the env and the step,
    before it reaches VecNormalize's running statistics (one NaN there spoils every later observation and
    reward) or a wrapper's model. Costs an ``isfinite`` over each step's arrays."""

    def __init__(self, venv: VecEnv, env_id: str):
        super().__init__(venv)
        self.env_id, self.steps = env_id, 0

    def reset(self) -> Any:
        obs = self.venv.reset()
        self._check(obs, "observation", "at reset")
        return obs

    def step_wait(self) -> Any:
        obs, rewards, dones, infos = self.venv.step_wait()
        self.steps += 1
        where = f"at step {self.steps}"
        self._check(rewards, "reward", where)
        self._check(obs, "observation", where)
        for info in infos:
            if "terminal_observation" in info:
                self._check(info["terminal_observation"], "terminal observation", where)
        return obs, rewards, dones, infos

    def _check(self, values: Any, what: str, where: str) -> None:
        if not isinstance(values, np.ndarray) or values.dtype.kind not in "fc" or np.all(np.isfinite(values)):
            return  # dict observations and integer frames are left alone
        if what != "terminal observation" and self.num_envs > 1:  # one row per env
            env = int(np.flatnonzero(~np.isfinite(values.reshape(self.num_envs, -1)).all(axis=1))[0])
            where += f" in env {env} of {self.num_envs}"
        raise NonFiniteEnvOutput(f"{self.env_id} returned a non-finite {what} {where}; training stopped before it "
                                 f"reached the agent (the run's last checkpoint is kept)")


def make_vec_env(config: RunConfig, monitor_dir: Path | None = None, append: bool = False) -> VecEnv:
    """The run's envs (Monitor-wrapped when ``monitor_dir`` is given) under a :class:`FiniteGuard`."""
    fns = [
        make_env_fn(config.env_id, config.env_kwargs,
                    str(monitor_dir / str(i)) if monitor_dir is not None else None, append)
        for i in range(config.n_envs)
    ]
    if config.vec_env == "subproc" and config.n_envs > 1:
        return FiniteGuard(SubprocVecEnv(fns), config.env_id)
    return FiniteGuard(DummyVecEnv(fns), config.env_id)


def attach_reward_wrappers(venv: VecEnv, config: RunConfig) -> tuple[VecEnv, list[BaseCallback], list[Any]]:
    """The slot between the raw VecEnv and VecNormalize where reward bonuses and learned rewards go.

    Returns the wrapped env, the callbacks the wrappers need (e.g. VIME's rollout-end bonus, GAIL's
    TensorBoard logging) and the wrappers themselves, whose state (``save_state``/``load_state``) is
    kept with the run. A learned reward (GAIL, InfoGAIL) goes innermost, so that a bonus adds to it.
    """
    callbacks: list[BaseCallback] = []
    wrappers: list[Any] = []
    if config.imitation in ("gail", "infogail"):
        from rlgen.imitation import GAIL, InfoGAIL

        demos = load_run_demos(config, venv.observation_space, venv.action_space)
        kwargs = {"seed": config.seed, "update_every": default_update_every(config), **config.imitation_kwargs}
        try:
            gail = (InfoGAIL if config.imitation == "infogail" else GAIL)(venv, demos, **kwargs)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{config.imitation}: {exc}".splitlines()[0]) from None
        venv = gail
        callbacks.append(gail.callback)
        wrappers.append(gail)
    if config.bonus is not None:
        from rlgen.exploration import BONUS_WRAPPERS

        try:
            bonus = BONUS_WRAPPERS[config.bonus](venv, **{"seed": config.seed, **config.bonus_kwargs})
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{config.bonus}: {exc}".splitlines()[0]) from None
        venv = bonus
        callbacks.append(bonus.callback)
        wrappers.append(bonus)
    return venv, callbacks, wrappers


def load_run_demos(config: RunConfig, observation_space: gym.Space | None = None,
                   action_space: gym.Space | None = None) -> Any:
    """The run's demonstrations (``config.demos``), checked against its env; ConfigError on any problem."""
    from rlgen.imitation import DemoError, load_demos

    if not config.demos:
        raise ConfigError("this run has no demonstrations file (set demos)")
    try:
        return load_demos(config.demos, subsample=config.demo_subsample, n_episodes=config.demo_episodes,
                          env_id=config.env_id, observation_space=observation_space,
                          action_space=action_space, seed=config.seed)
    except DemoError as exc:
        raise ConfigError(str(exc)) from None


DEMOS_RECORD = "demos.json"


def record_demos(config: RunConfig, resume: bool = False) -> None:
    """Write which demo file a run learns from (its path and sha256) beside its config, so a report can tell
    which demos a run saw; a run resumed on a demo file whose bytes changed gets a ConfigError naming both."""
    if not config.demos:
        return
    digest = file_sha256(config.demos)
    path = config.run_dir / DEMOS_RECORD
    if resume and path.is_file():
        recorded = json.loads(path.read_text()).get("sha256")
        if recorded != digest:
            raise ConfigError(f"{config.run_dir} was trained on demos of sha256 {recorded}; {config.demos} now "
                              f"has {digest}: resuming would change its demonstrations mid-run")
        return
    atomic_write_text(path, json.dumps({"path": str(config.demos), "sha256": digest,
                                        "episodes": config.demo_episodes, "subsample": config.demo_subsample},
                                       indent=2))


def default_update_every(config: RunConfig) -> int:
    """GAIL's default pace: one discriminator update per rollout, or per the fewest whole rollouts that
    hold 2,048 transitions (A2C's 5-step rollouts would otherwise update it every few steps)."""
    n_steps = config.hyperparams.get("n_steps")
    if n_steps is None:
        parameter = inspect.signature(algo_class(config.algo).__init__).parameters.get("n_steps")
        n_steps = parameter.default if parameter is not None else None
    if not isinstance(n_steps, int):  # off-policy agents have no rollouts
        return 2048
    rollout = n_steps * config.n_envs
    return rollout * max(1, math.ceil(2048 / rollout))


def resolve_hyperparams(config: RunConfig) -> dict[str, Any]:
    """YAML-friendly hyperparameters -> SB3 constructor arguments (activation names -> classes)."""
    params = dict(config.hyperparams)
    policy_kwargs = dict(params.get("policy_kwargs") or {})
    activation = policy_kwargs.get("activation_fn")
    if isinstance(activation, str):
        if activation not in _ACTIVATIONS:
            raise ConfigError(f"unknown activation_fn {activation!r}; choose one of: {', '.join(_ACTIVATIONS)}")
        policy_kwargs["activation_fn"] = _ACTIVATIONS[activation]
    if policy_kwargs:
        params["policy_kwargs"] = policy_kwargs
    return params


def _gamma(config: RunConfig) -> float:
    return float(config.hyperparams.get("gamma", 0.99))


def vec_normalize(venv: VecEnv, config: RunConfig, **kwargs: Any) -> VecNormalize:
    """VecNormalize for a run (``kwargs``: training, norm_reward). Image observations (uint8 (C, H, W) in
    [0, 255], e.g. rlgen/SparseMountainCarPixels-v0) are left as they are: the policy scales them to [0, 1]
    itself, and per-pixel standardisation would blow up pixels that are almost always dark. Rewards are
    still normalised; the observation statistics are kept (unused, never updated) so that saving, loading and
    syncing them work as for any run."""
    image = is_image_space(venv.observation_space)
    normalizer = VecNormalize(venv, norm_obs=not image, gamma=_gamma(config), **kwargs)
    if image:
        normalizer.obs_rms = RunningMeanStd(shape=venv.observation_space.shape)
    return normalizer


def build_model(config: RunConfig, venv: VecEnv) -> BaseAlgorithm:
    cls = algo_class(config.algo)
    try:
        return cls("MlpPolicy", venv, seed=config.seed, device="cpu", verbose=0, **resolve_hyperparams(config))
    except (TypeError, ValueError, AssertionError) as exc:
        raise ConfigError(f"{config.algo} rejected the hyperparameters: {exc}") from None


# -- saving --------------------------------------------------------------------------------------
def save_model(model: BaseAlgorithm, path: Path) -> None:
    buffer = io.BytesIO()
    model.save(buffer)
    atomic_write_bytes(path, buffer.getvalue())


def save_replay_buffer(model: BaseAlgorithm, path: Path) -> None:
    """An off-policy agent's replay buffer (its filled part) as .npz, so a resumed run keeps what it had
    collected (SB3's own ``save_replay_buffer`` pickles). On-policy agents have none: nothing is written."""
    buffer = getattr(model, "replay_buffer", None)
    if buffer is None:
        return
    size = buffer.buffer_size if buffer.full else buffer.pos
    arrays = {name: getattr(buffer, name)[:size] for name in _REPLAY_ARRAYS
              if isinstance(getattr(buffer, name, None), np.ndarray)}
    atomic_write(path, lambda handle: np.savez(handle, pos=buffer.pos, full=buffer.full, **arrays))


def load_replay_buffer(model: BaseAlgorithm, path: Path) -> None:
    buffer = model.replay_buffer  # type: ignore[attr-defined]
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    except (OSError, ValueError, EOFError) as exc:
        raise ConfigError(f"cannot load the replay buffer {path}: {exc}") from None
    for name in _REPLAY_ARRAYS:
        if name not in arrays:
            continue
        live = getattr(buffer, name)
        saved = arrays[name]
        if saved.shape[1:] != live.shape[1:] or len(saved) > len(live):
            raise ConfigError(f"the replay buffer in {path} holds {name} of shape {saved.shape}; this agent's buffer "
                              f"is {live.shape}")
        live[:len(saved)] = saved
    buffer.pos, buffer.full = int(arrays["pos"]), bool(arrays["full"])


def write_eval_history(path: Path, history: list[dict[str, float]]) -> None:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=EVAL_FIELDS)
    writer.writeheader()
    writer.writerows(history)
    atomic_write_text(path, out.getvalue())


def read_eval_history(path: Path) -> list[dict[str, float]]:
    if not path.is_file():
        return []
    with path.open() as handle:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(handle)]


# -- evaluation ----------------------------------------------------------------------------------
class Evaluator:
    """A separate, un-wrapped copy of the env: it scores the true env return with the training
    env's observation statistics frozen in (deterministic actions by default).

    An InfoGAIL policy reads a latent code after the observation: the env appends one, drawn per episode
    (from ``seed``, the same codes at every evaluation) or held at ``code``."""

    def __init__(self, config: RunConfig, seed: int, code: int | None = None):
        self.seed = seed
        self.venv: VecEnv = DummyVecEnv([make_env_fn(config.env_id, config.env_kwargs, None, False)])
        if config.imitation == "infogail":
            from rlgen.imitation import AppendCode

            try:
                self.venv = AppendCode(self.venv, config.imitation_kwargs["n_modes"], code=code, seed=seed)
            except (TypeError, ValueError) as exc:
                self.venv.close()
                raise ConfigError(f"infogail: {exc}".splitlines()[0]) from None
        elif code is not None:
            self.venv.close()
            raise ConfigError(f"only an infogail run's policy takes a latent code; this is a "
                              f"{config.imitation or config.algo} run")
        if config.normalize:
            self.venv = vec_normalize(self.venv, config, training=False, norm_reward=False)

    def sync(self, train_env: VecEnv) -> None:
        if isinstance(self.venv, VecNormalize) and isinstance(train_env, VecNormalize):
            self.venv.obs_rms = train_env.obs_rms.copy()

    def returns(self, model: BaseAlgorithm, episodes: int, deterministic: bool = True) -> np.ndarray:
        self.venv.seed(self.seed)  # every evaluation starts from the same states
        rewards, _ = evaluate_policy(
            model, self.venv, n_eval_episodes=episodes, deterministic=deterministic, return_episode_rewards=True
        )
        return np.asarray(rewards, dtype=np.float64)

    def close(self) -> None:
        self.venv.close()


class RunCallback(BaseCallback):
    """Periodic evaluation (to eval.csv and TensorBoard) and resumable checkpoints."""

    def __init__(self, config: RunConfig, run_dir: Path, evaluator: Evaluator,
                 history: list[dict[str, float]], start_time: float, wrappers: list[Any] | None = None):
        super().__init__()
        self.wrappers = wrappers or []
        self.config = config
        self.run_dir = run_dir
        self.evaluator = evaluator
        self.history = history
        self.start_time = start_time
        self._next_eval = self._next_checkpoint = math.inf
        # a new best must beat every evaluation on record (a run resumed from before best/ was kept has
        # rows without a model: their policies cannot become the best, but they set the bar)
        self.best_return = max([read_best(run_dir).get("mean_return", -math.inf),
                                *(row["mean_return"] for row in history)])

    def _init_callback(self) -> None:
        self._next_eval = self._next_multiple_from(self.config.eval_freq)
        self._next_checkpoint = self._next_multiple_from(self.config.checkpoint_freq)

    def _next_multiple_from(self, freq: int) -> float:
        return math.inf if freq <= 0 else (self.model.num_timesteps // freq + 1) * freq

    def _on_step(self) -> bool:
        if self.num_timesteps >= self._next_eval:
            self._next_eval = self._next_multiple_from(self.config.eval_freq)
            self.evaluate()
        return True

    def _on_rollout_start(self) -> None:
        # Checkpoints fall between rollouts: the policy has taken its update, reward wrappers have finished
        # their rollout-end work, and a resumed run collects whole rollouts from the same step count as an
        # uninterrupted one (a mid-rollout checkpoint would drop the partial rollout and shift every later one).
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
        write_eval_history(self.run_dir / EVAL_FILE, self.history)
        if row["mean_return"] > self.best_return:
            self.best_return = row["mean_return"]
            save_best(self.model, self.run_dir, row)
        return row

    def checkpoint(self) -> None:
        save_checkpoint(self.model, self.run_dir, self.history, self.wrappers)


LOG_EVERY = 2048
"""On-policy agents write their logs about once per this many transitions, whatever their rollout size."""


def _log_interval(model: BaseAlgorithm) -> dict[str, int]:
    """``learn(log_interval=...)`` for an on-policy agent: at least one log line per LOG_EVERY transitions
    (SB3's A2C default, every 100 of its 5-step rollouts, writes nothing for the first 500 steps per env);
    never less often than SB3's own default (PPO and TRPO: every rollout). Off-policy: SB3's default."""
    n_steps = getattr(model, "n_steps", None)
    if n_steps is None or getattr(model, "rollout_buffer", None) is None:
        return {}
    default = inspect.signature(model.learn).parameters["log_interval"].default
    return {"log_interval": max(1, min(default, LOG_EVERY // (n_steps * model.n_envs)))}


def save_checkpoint(model: BaseAlgorithm, run_dir: Path, history: list[dict[str, float]],
                    wrappers: list[Any]) -> None:
    """Model, statistics, wrapper states, then progress.json last: a checkpoint counts once its
    progress file names it."""
    ckpt = run_dir / CHECKPOINT_DIR
    save_model(model, ckpt / MODEL_FILE)
    save_replay_buffer(model, ckpt / REPLAY_FILE)
    env = model.get_vec_normalize_env()
    if env is not None:
        save_vecnormalize_stats(env, ckpt / VECNORM_FILE)
    for wrapper in wrappers:
        flush_log = getattr(getattr(wrapper, "callback", None), "flush_log", None)
        if flush_log is not None:  # a rollout bonus's log reaches the checkpoint's step
            flush_log()
        wrapper.save_state(ckpt)
    write_eval_history(run_dir / EVAL_FILE, history)
    atomic_write_text(ckpt / "progress.json", json.dumps({"timesteps": int(model.num_timesteps)}))
    from rlgen.agents.plotting import plot_learning_curve

    plot_learning_curve(run_dir)


def save_best(model: BaseAlgorithm, run_dir: Path, row: dict[str, float]) -> None:
    """The policy of a new best evaluation, its VecNormalize statistics of that moment and best.json (its
    step count and return), swapped in for ``run_dir/best`` as one folder: never a mix of two bests."""
    env = model.get_vec_normalize_env()

    def fill(folder: Path) -> None:
        save_model(model, folder / MODEL_FILE)
        if env is not None:
            save_vecnormalize_stats(env, folder / VECNORM_FILE)
        atomic_write_text(folder / BEST_FILE, json.dumps({"timesteps": int(row["timesteps"]),
                                                          "mean_return": row["mean_return"],
                                                          "std_return": row["std_return"],
                                                          "episodes": int(row["episodes"])}, indent=2))

    atomic_dir(run_dir / BEST_DIR, fill)


def read_best(run_dir: Path) -> dict[str, Any]:
    """``best/best.json`` of a run ({} if it has none): the step count and return of its best evaluation."""
    try:
        return dict(json.loads((run_dir / BEST_DIR / BEST_FILE).read_text()))
    except (OSError, ValueError):
        return {}


def drop_best_after(run_dir: Path, timesteps: int) -> None:
    """On resume: a best evaluated after the checkpoint the run resumes from (a crash came between) is
    dropped with the eval.csv rows past it, so that ``best/`` always is the policy of a row of eval.csv."""
    if read_best(run_dir).get("timesteps", -1) > timesteps:
        shutil.rmtree(run_dir / BEST_DIR)


def has_best(run_dir: str | Path) -> bool:
    """Whether a run kept the policy of its best evaluation (runs trained before rlgen kept one did not)."""
    return bool(read_best(Path(run_dir))) and (Path(run_dir) / BEST_DIR / MODEL_FILE).is_file()


# -- train ---------------------------------------------------------------------------------------
def train(config: RunConfig, resume: bool = False) -> RunResult:
    """Train one run; with ``resume``, continue the run in ``config.run_dir`` from its checkpoint.

    ``config.imitation == "bc"`` runs behaviour cloning alone (see :func:`train_bc`). One process at a time
    trains into a run directory: a second gets a ConfigError naming the first's pid.
    """
    config.validated()
    try:
        with run_lock(config.run_dir):
            return train_bc(config, resume) if config.imitation == "bc" else _train(config, resume)
    except LockedError as exc:
        raise ConfigError(str(exc)) from None


def _train(config: RunConfig, resume: bool) -> RunResult:
    run_dir = config.run_dir
    ckpt = run_dir / CHECKPOINT_DIR
    if resume:
        if not (ckpt / "progress.json").is_file():
            raise ConfigError(f"nothing to resume in {run_dir}: no checkpoint/progress.json")
        saved = RunConfig.load(run_dir / CONFIG_FILE)
        for name in _RUN_IDENTITY:
            if getattr(saved, name) != getattr(config, name):
                raise ConfigError(f"{run_dir} holds a run with {name} {getattr(saved, name)!r}; it cannot be resumed "
                                  f"with {name} {getattr(config, name)!r}")
    elif (run_dir / CONFIG_FILE).exists():
        raise ConfigError(f"run directory {run_dir} already holds a run; resume it or choose another run_name")
    run_dir.mkdir(parents=True, exist_ok=True)

    torch.set_num_threads(config.torch_threads)
    set_random_seed(config.seed)
    start = time.time()
    venv = make_vec_env(config, run_dir / "monitor", append=resume)
    try:
        venv, wrapper_callbacks, wrappers = attach_reward_wrappers(venv, config)
        record_demos(config, resume)
    except BaseException:
        venv.close()
        raise
    # saved once the wrappers accepted their settings, so a bad setting can be fixed and re-run
    config.save(run_dir / CONFIG_FILE)
    done = json.loads((ckpt / "progress.json").read_text())["timesteps"] if resume else None
    for wrapper in wrappers:
        if hasattr(wrapper.callback, "set_log"):  # rollout bonuses: per-rollout values beside TensorBoard
            wrapper.callback.set_log(run_dir / f"{Path(wrapper.state_file).stem}_log.jsonl", keep_until=done,
                                     every=LOG_EVERY)
    if config.normalize:
        venv = vec_normalize(venv, config, norm_reward=config.norm_reward)

    history: list[dict[str, float]] = []
    if resume:
        model = algo_class(config.algo).load(ckpt / MODEL_FILE, env=venv, device="cpu")
        if (ckpt / REPLAY_FILE).is_file():
            load_replay_buffer(model, ckpt / REPLAY_FILE)
        if isinstance(venv, VecNormalize):
            load_vecnormalize_stats(venv, ckpt / VECNORM_FILE)
        for wrapper in wrappers:
            try:
                wrapper.load_state(ckpt)
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
        history = [row for row in read_eval_history(run_dir / EVAL_FILE) if row["timesteps"] <= done]
        drop_best_after(run_dir, done)
        start -= history[-1]["wall_time"] if history else 0.0
    else:
        model = build_model(config, venv)
        if config.bc_pretrain:
            stats = pretrain_with_demos(model, venv, config)
            atomic_write_text(run_dir / BC_FILE, json.dumps(stats, indent=2))
    model.set_logger(configure(str(run_dir / "tb"), ["tensorboard"]))

    evaluator = Evaluator(config, seed=config.seed + 10_000)
    run_callback = RunCallback(config, run_dir, evaluator, history, start, wrappers)
    remaining = config.total_steps - model.num_timesteps
    learn_time = 0.0
    try:
        if remaining > 0:
            learn_start = time.perf_counter()
            model.learn(
                remaining,
                callback=CallbackList([*wrapper_callbacks, run_callback]),
                reset_num_timesteps=not resume,
                progress_bar=config.progress_bar,
                **_log_interval(model),
            )
            learn_time = time.perf_counter() - learn_start
        else:
            run_callback.init_callback(model)
        if not history or history[-1]["timesteps"] < model.num_timesteps:
            run_callback.evaluate()
        if remaining > 0:
            model.logger.dump(model.num_timesteps)  # the final evaluation, and what SB3 recorded since its last line
        save_checkpoint(model, run_dir, history, wrappers)
        save_model(model, run_dir / MODEL_FILE)
        if isinstance(venv, VecNormalize):
            save_vecnormalize_stats(venv, run_dir / VECNORM_FILE)
        for wrapper in wrappers:
            wrapper.save_state(run_dir)
    finally:
        evaluator.close()
        venv.close()
    last = history[-1]
    result = RunResult(run_dir, int(model.num_timesteps), last["mean_return"], last["std_return"],
                       time.time() - start, learn_time, history)
    atomic_write_text(run_dir / RESULT_FILE, json.dumps(result.to_dict(), indent=2))
    return result


# -- behaviour cloning -----------------------------------------------------------------------------
def pretrain_with_demos(model: BaseAlgorithm, venv: VecEnv, config: RunConfig) -> dict[str, float]:
    """Behaviour-clone ``model``'s policy on the run's demos (``config.bc_kwargs``), in place.

    Behind VecNormalize the policy sees normalised observations, and before any env step the only
    statistics there are are the expert's: the observation statistics start as those of every demo
    observation (counted as that many samples, so training moves them as slowly as it would have).
    """
    from rlgen.imitation import behaviour_cloning

    demos = load_run_demos(config, model.observation_space, model.action_space)
    obs, acts, _, _ = demos.transitions()
    if isinstance(venv, VecNormalize) and venv.norm_obs:
        every_obs = np.concatenate([traj.obs for traj in demos])
        venv.obs_rms.mean = every_obs.mean(axis=0).astype(np.float64)
        venv.obs_rms.var = every_obs.var(axis=0).astype(np.float64)
        venv.obs_rms.count = float(len(every_obs))
        obs = venv.normalize_obs(obs)
    kwargs = {"seed": config.seed, "progress_bar": config.progress_bar, **config.bc_kwargs}
    try:
        stats = behaviour_cloning(model.policy, obs, acts, **kwargs)  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"bc: {exc}".splitlines()[0]) from None
    return {**stats, "pairs": float(len(obs)), "episodes": float(len(demos))}


def train_bc(config: RunConfig, resume: bool = False) -> RunResult:
    """Behaviour cloning alone: fit the policy to the demos, evaluate it, write a run directory that
    ``evaluate``/``rlgen eval`` read like any other. No env steps are taken (``timesteps`` is 0)."""
    config.validated()
    run_dir = config.run_dir
    if resume:
        raise ConfigError(f"{run_dir} is a behaviour-cloning run; it trains in one go and cannot be resumed")
    if (run_dir / CONFIG_FILE).exists():
        raise ConfigError(f"run directory {run_dir} already holds a run; choose another run_name")
    torch.set_num_threads(config.torch_threads)
    set_random_seed(config.seed)
    start = time.time()
    venv: VecEnv = make_vec_env(config)
    if config.normalize:
        venv = vec_normalize(venv, config, norm_reward=config.norm_reward)
    evaluator = Evaluator(config, seed=config.seed + 10_000)
    try:
        model = build_model(config, venv)
        learn_start = time.perf_counter()
        stats = pretrain_with_demos(model, venv, config)
        learn_time = time.perf_counter() - learn_start
        run_dir.mkdir(parents=True, exist_ok=True)
        record_demos(config)
        config.save(run_dir / CONFIG_FILE)
        evaluator.sync(venv)
        returns = evaluator.returns(model, config.eval_episodes)
        history = [{"timesteps": 0.0, "mean_return": float(returns.mean()), "std_return": float(returns.std()),
                    "episodes": float(len(returns)), "wall_time": time.time() - start}]
        write_eval_history(run_dir / EVAL_FILE, history)
        atomic_write_text(run_dir / BC_FILE, json.dumps(stats, indent=2))
        save_model(model, run_dir / MODEL_FILE)
        if isinstance(venv, VecNormalize):
            save_vecnormalize_stats(venv, run_dir / VECNORM_FILE)
    finally:
        evaluator.close()
        venv.close()
    result = RunResult(run_dir, 0, history[0]["mean_return"], history[0]["std_return"], time.time() - start,
                       learn_time, history)
    atomic_write_text(run_dir / RESULT_FILE, json.dumps(result.to_dict(), indent=2))
    return result


# -- evaluate a saved run ------------------------------------------------------------------------
def load_run(run_dir: str | Path, best: bool = False) -> tuple[RunConfig, BaseAlgorithm, Path | None]:
    """The run's config, its final (or latest checkpointed) model, and its VecNormalize statistics file;
    with ``best``, the model of its best periodic evaluation (``best/``) instead."""
    run_dir = Path(run_dir)
    if not (run_dir / CONFIG_FILE).is_file():
        raise ConfigError(f"{run_dir} is not a run directory (no {CONFIG_FILE})")
    config = RunConfig.load(run_dir / CONFIG_FILE)
    model_path = run_dir / MODEL_FILE
    stats_path = run_dir / VECNORM_FILE
    if best:
        if not has_best(run_dir):
            why = (f"{BEST_DIR}/{BEST_FILE} is there without {BEST_DIR}/{MODEL_FILE} (restored without its models?)"
                   if read_best(run_dir) else "behaviour-cloning runs keep none, and runs trained before rlgen kept "
                   "one or not yet evaluated have none")
            raise ConfigError(f"{run_dir} has no best model: {why}")
        model_path, stats_path = run_dir / BEST_DIR / MODEL_FILE, run_dir / BEST_DIR / VECNORM_FILE
    elif not model_path.is_file():  # an unfinished run: use its latest checkpoint
        model_path = run_dir / CHECKPOINT_DIR / MODEL_FILE
        stats_path = run_dir / CHECKPOINT_DIR / VECNORM_FILE
    if not model_path.is_file():
        raise ConfigError(f"{run_dir} holds no model yet (neither {MODEL_FILE} nor a checkpoint)")
    try:
        model = algo_class(config.algo).load(model_path, device="cpu")
    except Exception as exc:  # a truncated or foreign file
        raise ConfigError(f"cannot load model {model_path}: {exc}") from None
    return config, model, stats_path if config.normalize else None


def evaluate(run_dir: str | Path, episodes: int = 10, deterministic: bool = True, seed: int = 0,
             code: int | None = None, best: bool = False) -> np.ndarray:
    """Episode returns of the true env reward for the run's final (or latest checkpointed) policy, or with
    ``best`` the policy of its best periodic evaluation.

    An infogail run's policy runs each episode under a latent code drawn from ``seed``, or under ``code``.
    """
    if episodes < 1:
        raise ConfigError(f"episodes must be a positive integer, got {episodes}")
    config, model, stats_path = load_run(run_dir, best)
    torch.set_num_threads(config.torch_threads)
    evaluator = Evaluator(config, seed=seed, code=code)
    try:
        if stats_path is not None:
            load_vecnormalize_stats(evaluator.venv, stats_path)  # type: ignore[arg-type]
            evaluator.venv.training = False  # type: ignore[attr-defined]
            evaluator.venv.norm_reward = False  # type: ignore[attr-defined]
        return evaluator.returns(model, episodes, deterministic)
    finally:
        evaluator.close()


def collect_demos(run_dir: str | Path, n_episodes: int, *, deterministic: bool = True, seed: int = 0,
                  progress_bar: bool = False, code: int | None = None, best: bool = False,
                  min_return: float | None = None) -> Any:
    """Roll out a run's policy (with ``best``: that of its best periodic evaluation) for ``n_episodes`` and
    return its ``rlgen.imitation.demos.Trajectories``; with ``min_return``, only episodes that reach it
    count (``rlgen.imitation.collect_demos``).

    The policy sees observations normalised with the run's VecNormalize statistics (frozen), as in
    training; the demos record the raw observations and the clipped actions that reached the env.
    An infogail run's policy needs ``code``, the latent code it acts under in every episode.
    """
    from rlgen.imitation import DemoError
    from rlgen.imitation import collect_demos as collect

    if not isinstance(n_episodes, int) or n_episodes < 1:
        raise ConfigError(f"n_episodes must be a positive integer, got {n_episodes!r}")
    config, model, stats_path = load_run(run_dir, best)
    torch.set_num_threads(config.torch_threads)
    codes = None
    if config.imitation == "infogail":
        from rlgen.imitation.infogail import LatentCodes

        if code is None:
            raise ConfigError(f"{run_dir} is an infogail run: its policy needs a latent code "
                              f"(0..{config.imitation_kwargs['n_modes'] - 1}) to collect demos with")
        try:
            codes = LatentCodes(config.imitation_kwargs["n_modes"], 1)
            codes.fix(code)
        except ValueError as exc:
            raise ConfigError(f"infogail: {exc}") from None
    elif code is not None:
        raise ConfigError(f"only an infogail run's policy takes a latent code; this is a "
                          f"{config.imitation or config.algo} run")
    env = make_env_fn(config.env_id, config.env_kwargs, None, False)()
    normalizer: VecNormalize | None = None
    if stats_path is not None:
        inner: VecEnv = DummyVecEnv([lambda: env])
        if codes is not None:  # the statistics are those of the coded observations
            from rlgen.imitation import AppendCode

            inner = AppendCode(inner, codes.n_modes)
        normalizer = vec_normalize(inner, config, training=False, norm_reward=False)
        load_vecnormalize_stats(normalizer, stats_path)
        normalizer.training = False

    def policy(obs: np.ndarray) -> np.ndarray:
        if codes is not None:
            obs = codes.append(obs[None])[0]
        seen = normalizer.normalize_obs(obs) if normalizer is not None else obs
        return model.predict(seen, deterministic=deterministic)[0]

    try:
        with torch.random.fork_rng():  # sampled actions repeat for a seed, without moving the caller's RNG
            torch.manual_seed(seed)
            return collect(policy, env, n_episodes, seed=seed, env_id=config.env_id, progress_bar=progress_bar,
                           min_return=min_return)
    except DemoError as exc:
        raise ConfigError(str(exc)) from None
    finally:
        env.close()
