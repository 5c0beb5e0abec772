"""The env stack of a run: ``gym.make`` -> Monitor -> VecEnv -> FiniteGuard -> reward wrappers -> VecNormalize,
and the SB3 model on top of it.

The reward wrappers a config asks for (a learned reward, an exploration bonus) are built from
:func:`wrapper_specs` and used only through the contract of :class:`rlgen.reward_wrapper.RewardWrapper`: their
callbacks, saved states, logs and what their policy needs outside training.
"""

from __future__ import annotations

import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium.wrappers import DtypeObservation, FlattenObservation, TransformReward
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.preprocessing import is_image_space
from stable_baselines3.common.running_mean_std import RunningMeanStd
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecEnv, VecEnvWrapper, VecNormalize

from rlgen.agents.config import ConfigError, RunConfig, algo_class
from rlgen.agents.rundir import align_monitor_columns, read_monitor_file
from rlgen.agents.rundir import monitor_file as monitor_path
from rlgen.envs.coverage import MAX_PROGRESS, NEW_CELLS, ReachAndCoverage, parse_cells, task_measures
from rlgen.envs.progress import MAX_GOAL_FRACTION
from rlgen.envs.quiet import make as quiet_make
from rlgen.envs.suites import SuiteNotInstalled
from rlgen.reward_wrapper import RewardWrapper

_ACTIVATIONS = {"tanh": torch.nn.Tanh, "relu": torch.nn.ReLU, "elu": torch.nn.ELU, "leaky_relu": torch.nn.LeakyReLU}


def make_env_fn(env_id: str, env_kwargs: dict[str, Any], monitor_file: str | None, append: bool,
                t_start: float | None = None, reward_weight: float = 1.0) -> Callable:
    """A function that makes one env of a run: ``gym.make`` (through :func:`rlgen.envs.quiet.make`, which
    registers a third-party suite's ids on first use and sets rlgen's defaults for them under ``env_kwargs``,
    e.g. ``continuing_task=False`` for Gymnasium-Robotics' mazes), then the observation made flat, then
    Monitor, then the reward weighted by ``reward_weight`` (``RunConfig.env_reward_weight``) outside it, so that
    Monitor records the env's own reward whatever the agent learns from.

    A task with measures in :mod:`rlgen.envs.coverage` (rlgen's sparse tasks, the DeepMind Control cartpole,
    acrobot and pendulum, the mazes) gets :class:`~rlgen.envs.coverage.ReachAndCoverage` inside Monitor, whose
    file then has a ``max_progress`` column (each episode's highest progress; the mazes' is ``max_path_progress``)
    and a ``new_cells`` one (the cells of its discretised position the env first visited in it); any other env's
    file keeps ``r, l, t`` alone. A resumed run's env starts from the cells its file already holds, and a file of
    an older rlgen's columns (``max_goal_fraction``; a maze's ``max_progress``) is brought to these first.

    A Dict observation (the DeepMind Control Suite's through shimmy, a maze's observation / achieved_goal /
    desired_goal) is flattened by gymnasium's ``FlattenObservation`` into one vector, the keys in the Dict
    space's order and every key kept (a maze's goal stays in what the agent sees), and a float64 result is
    cast to float32 by gymnasium's ``DtypeObservation``: the reward wrappers need a Box and SB3 computes in
    float32. Box observations are left as the env gives them, float64 ones included (Gymnasium's MuJoCo
    tasks): a cast would change their space, and SB3 refuses to resume a checkpoint whose observation space
    (dtype included) differs from the env's, so no MuJoCo run trained before could be resumed.
    """

    def make() -> gym.Env:
        import rlgen.envs  # noqa: F401  (fresh sub-processes need the registrations)

        try:
            env = quiet_make(env_id, **env_kwargs)
        except SuiteNotInstalled as exc:  # a config made without check_env_id, e.g. RunConfig(...) unvalidated
            raise ConfigError(str(exc)) from None
        except Exception as exc:  # env kwargs it does not take, or the env's package failing on this machine
            raise ConfigError(env_build_error(env_id, env_kwargs, exc)) from exc
        env = flat_observation(env)
        try:
            check_observation_space(env_id, env.observation_space)
        except ConfigError:
            env.close()
            raise
        keywords: tuple[str, ...] = ()
        path = monitor_path(monitor_file) if monitor_file is not None else None
        measures = task_measures(env_id, env)
        if measures is not None:  # columns of how near each training episode came to the goal, and where it went
            seen = _recorded_cells(path) if append and path is not None else ()
            env = ReachAndCoverage(env, measures, seen)
            keywords = env.info_keywords
        resuming = append and path is not None and path.is_file()
        if resuming:  # Monitor appends rows without a header: the file's columns must be this run's
            align_monitor_columns(path, ("r", "l", "t", *keywords), renamed={MAX_GOAL_FRACTION: MAX_PROGRESS})
        monitor = Monitor(env, filename=monitor_file, override_existing=not resuming, info_keywords=keywords)
        if t_start is not None:  # a resumed run's clock runs on from its first start: its time column keeps rising
            monitor.t_start = t_start
        if reward_weight != 1.0:
            return TransformReward(monitor, lambda reward: reward_weight * reward)
        return monitor

    return make


def _recorded_cells(path: Path) -> list[tuple[int, ...]]:
    """The cells a resumed env's Monitor file already holds (its episodes up to the checkpoint), so that the
    env goes on recording only cells new to the file."""
    header, rows = read_monitor_file(path)
    if NEW_CELLS not in header:
        return []
    index, cells = header.index(NEW_CELLS), []
    for row in rows:
        try:
            cells += parse_cells(row[index]) if len(row) > index else []
        except ValueError:  # a row cut short by a kill, or one from before cells were recorded (nan)
            pass
    return cells


def flat_observation(env: gym.Env) -> gym.Env:
    """``env`` with a Dict observation flattened into one float32 vector (see :func:`make_env_fn`), any other as
    it is: what the reward wrappers, which need a Box, and SB3 models built by hand can take."""
    if not isinstance(env.observation_space, gym.spaces.Dict):
        return env
    env = FlattenObservation(env)
    if env.observation_space.dtype == np.float64:
        with warnings.catch_warnings():  # the cast is the point: gymnasium warns that it loses precision
            warnings.filterwarnings("ignore", message=r".*Box (low|high)'s precision lowered")
            env = DtypeObservation(env, np.float32)
    return env


POLICY_OBSERVATION_SPACES = (gym.spaces.Box, gym.spaces.Discrete, gym.spaces.MultiDiscrete, gym.spaces.MultiBinary)
"""The observation spaces SB3's MlpPolicy takes (a Dict is flattened into a Box before it sees one)."""


def check_observation_space(env_id: str, space: gym.Space) -> None:
    """A one-line ConfigError for an observation space no SB3 policy takes (Tuple, Text, Graph, ...), which SB3
    would otherwise reject with a traceback once the model is built."""
    if not isinstance(space, POLICY_OBSERVATION_SPACES):
        raise ConfigError(f"{env_id} observes a {type(space).__name__} space ({space}), which SB3's policies do not "
                          f"take: Box, Discrete, MultiDiscrete, MultiBinary or Dict (flattened by rlgen); wrap the "
                          f"env (e.g. gymnasium's FlattenObservation) to give it one of these")


ACTION_SPACES: dict[str, tuple[type[gym.Space], ...]] = {
    **dict.fromkeys(("ppo", "trpo", "a2c"), (gym.spaces.Box, gym.spaces.Discrete, gym.spaces.MultiDiscrete,
                                             gym.spaces.MultiBinary)),
    "sac": (gym.spaces.Box,),
}
"""The action spaces each algorithm's SB3 class takes (its ``supported_action_spaces``)."""


def check_action_space(config: RunConfig, space: gym.Space) -> None:
    """A one-line ConfigError naming the action space an algorithm does not take (SAC on CartPole-v1's
    Discrete(2)), which SB3 asserts on inside the model's constructor."""
    if isinstance(space, ACTION_SPACES.get(config.algo, (gym.Space,))):
        return
    takes = " or ".join(cls.__name__ for cls in ACTION_SPACES[config.algo])
    others = [algo for algo, supported in ACTION_SPACES.items() if isinstance(space, supported)]
    hint = ""
    if others:
        hint = "; use " + (f"{', '.join(others[:-1])} or {others[-1]}" if len(others) > 1 else others[0])
    raise ConfigError(f"{config.algo} needs {takes} actions; {config.env_id} has {space}{hint}")


class NonFiniteEnvOutput(ConfigError):
    """An env returned a NaN or infinite reward or observation."""


class NonFiniteAction(NonFiniteEnvOutput):
    """The policy gave the env a NaN or infinite action (its training diverged)."""


class FiniteGuard(VecEnvWrapper):
    """Stops a run at the first non-finite reward or observation the env returns, naming the env and the step,
    before it reaches VecNormalize's running statistics (one NaN there spoils every later observation and
    reward) or a wrapper's model, and at the first non-finite action the policy sends (the run loop turns off
    torch's distribution argument checks, which caught that before, for speed). Costs an ``isfinite`` over
    each step's arrays.

    The step named is the run's env step count once that vectorised step is taken (SB3's ``num_timesteps``,
    summed over the envs), counted on from ``start_steps``, the env steps a resumed run had."""

    def __init__(self, venv: VecEnv, env_id: str, start_steps: int = 0):
        super().__init__(venv)
        self.env_id, self.steps, self.start_steps = env_id, 0, start_steps

    def env_steps(self, steps: int) -> int:
        """The run's env steps after ``steps`` vectorised steps of this guard."""
        return self.start_steps + steps * self.num_envs

    def step_async(self, actions: np.ndarray) -> None:
        if isinstance(actions, np.ndarray) and actions.dtype.kind in "fc" and not np.all(np.isfinite(actions)):
            raise NonFiniteAction(f"the policy sent {self.env_id} a non-finite action at env step "
                                  f"{self.env_steps(self.steps + 1)}: its training diverged (the run's last "
                                  f"checkpoint is kept)")
        self.venv.step_async(actions)

    def reset(self) -> Any:
        obs = self.venv.reset()
        self._check(obs, "observation", "at reset")
        return obs

    def step_wait(self) -> Any:
        obs, rewards, dones, infos = self.venv.step_wait()
        self.steps += 1
        where = f"at env step {self.env_steps(self.steps)}"
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


def env_build_error(env_id: str, env_kwargs: dict[str, Any], exc: BaseException) -> str:
    """One line saying why ``gym.make(env_id, **env_kwargs)`` failed: the exception and where it was raised (the
    file and line of the innermost frame, often inside the env's own package)."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" at {Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else ""
    message = (str(exc).splitlines() or [""])[0]
    settings = f" with env_kwargs {env_kwargs}" if env_kwargs else ""
    if isinstance(exc, (gym.error.NameNotFound, gym.error.VersionNotFound, gym.error.NamespaceNotFound)):
        hint = "an unknown env id: `rlgen envs` lists rlgen's tasks"
    elif isinstance(exc, gym.error.DependencyNotInstalled):
        hint = "a package the env needs is not installed"
    elif env_kwargs and isinstance(exc, TypeError):
        hint = "check env_kwargs against the env's constructor"
    elif env_kwargs:  # most likely a value the env refuses; else its code with these versions
        hint = ("check the env_kwargs values; if they are right, the env's package may not support the installed "
                "versions (`rlgen envs` lists the tasks rlgen tests)")
    else:
        hint = ("the env's own code failed: its package may not support the installed versions (`rlgen envs` "
                "lists the tasks rlgen tests)")
    return f"{env_id} could not be built{settings}: {type(exc).__name__}{where}" + (
        f": {message}" if message else "") + f" ({hint})"


def make_vec_env(config: RunConfig, monitor_dir: Path | None = None, append: bool = False,
                 t_start: float | None = None, start_steps: int = 0) -> VecEnv:
    """The run's envs (Monitor-wrapped when ``monitor_dir`` is given; ``append``, ``t_start`` and ``start_steps``:
    a resumed run's files, clock and env steps) under a :class:`FiniteGuard`."""
    fns = [
        make_env_fn(config.env_id, config.env_kwargs,
                    str(monitor_dir / str(i)) if monitor_dir is not None else None, append, t_start,
                    reward_weight=float(config.env_reward_weight))
        for i in range(config.n_envs)
    ]
    if config.vec_env == "subproc" and config.n_envs > 1:
        try:
            return FiniteGuard(SubprocVecEnv(fns), config.env_id, start_steps)
        except (EOFError, ConnectionError):  # a worker died building its env: build one here for the reason
            fns[0]().close()  # raises the one-line ConfigError of make_env_fn (when that was the cause)
            raise
    return FiniteGuard(DummyVecEnv(fns), config.env_id, start_steps)


# -- reward wrappers -------------------------------------------------------------------------------
@dataclass
class WrapperSpec:
    """One reward wrapper a config asks for: its class, the config's settings for it, whether it learns from the
    run's demos (its second argument), and the defaults the run loop gives it under those settings."""

    cls: type[RewardWrapper]
    settings: dict[str, Any]
    needs_demos: bool = False
    defaults: dict[str, Any] = field(default_factory=dict)
    option: str = ""
    """The config value that asked for it (``gail``, ``vime``, ...), for messages."""
    settings_key: str = ""
    """The config field holding ``settings`` (``imitation_kwargs``, ``bonus_kwargs``), for messages."""


def wrapper_specs(config: RunConfig) -> list[WrapperSpec]:
    """The reward wrappers of a run, innermost first: a learned reward (GAIL, InfoGAIL) goes innermost, so that
    an exploration bonus adds to it."""
    specs = []
    if config.imitation in ("gail", "infogail"):
        from rlgen.imitation import GAIL, InfoGAIL

        cls = InfoGAIL if config.imitation == "infogail" else GAIL
        # the discriminator's schedule is in transitions, whatever the rollout size: no layout-made default
        specs.append(WrapperSpec(cls, config.imitation_kwargs, needs_demos=True, option=config.imitation,
                                 settings_key="imitation_kwargs"))
    if config.bonus is not None:
        from rlgen.exploration import BONUS_WRAPPERS

        specs.append(WrapperSpec(BONUS_WRAPPERS[config.bonus], config.bonus_kwargs, option=config.bonus,
                                 settings_key="bonus_kwargs"))
    return specs


def attach_reward_wrappers(venv: VecEnv, config: RunConfig) -> tuple[VecEnv, list[RewardWrapper]]:
    """Wrap ``venv`` in the run's reward wrappers (the slot between the raw VecEnv and VecNormalize); returns the
    wrapped env and the wrappers, innermost first. A setting a wrapper rejects is a ConfigError naming it."""
    wrappers: list[RewardWrapper] = []
    for spec in wrapper_specs(config):
        args = (load_run_demos(config, venv.observation_space, venv.action_space),) if spec.needs_demos else ()
        kwargs = {"seed": config.seed, **spec.defaults, **spec.settings}
        try:
            wrapper = spec.cls(venv, *args, **kwargs)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{spec.option}: {exc}".splitlines()[0]) from None
        venv = wrapper
        wrappers.append(wrapper)
    return venv, wrappers


def policy_env(venv: VecEnv, config: RunConfig, *, seed: int = 0, code: int | None = None) -> VecEnv:
    """``venv`` as a policy trained by ``config`` sees it outside training (e.g. InfoGAIL's code appended);
    ``code`` holds a latent code, for the runs whose policy takes one."""
    for spec in _specs_taking(config, code):
        try:
            venv = spec.cls.policy_env(venv, spec.settings, seed=seed, code=code)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{spec.option}: {exc}".splitlines()[0]) from None
    return venv


def policy_observation(config: RunConfig, code: int | None = None) -> Callable[[np.ndarray], np.ndarray] | None:
    """What turns one env observation into the input of a policy trained by ``config`` (None: nothing to do)."""
    steps = []
    for spec in _specs_taking(config, code):
        try:
            step = spec.cls.policy_observation(spec.settings, code)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{spec.option}: {exc}".splitlines()[0]) from None
        if step is not None:
            steps.append(step)
    if not steps:
        return None

    def observe(obs: np.ndarray) -> np.ndarray:
        for step in steps:
            obs = step(obs)
        return obs

    return observe


def _specs_taking(config: RunConfig, code: int | None) -> list[WrapperSpec]:
    """The run's wrapper specs; ConfigError if ``code`` is given and none of its wrappers' policies takes one."""
    specs = wrapper_specs(config)
    if code is not None and not any(spec.cls.takes_code for spec in specs):
        raise ConfigError(f"only an infogail run's policy takes a latent code; this is a "
                          f"{config.imitation or config.algo} run")
    return specs


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


# -- normalisation and the model -------------------------------------------------------------------
def vec_normalize(venv: VecEnv, config: RunConfig, **kwargs: Any) -> VecNormalize:
    """VecNormalize for a run (``kwargs``: training, norm_reward). Image observations (uint8 (C, H, W) in
    [0, 255], e.g. rlgen/SparseMountainCarPixels-v0) are left as they are: the policy scales them to [0, 1]
    itself, and per-pixel standardisation would blow up pixels that are almost always dark; so are Discrete,
    MultiDiscrete and MultiBinary ones (FrozenLake-v1, Taxi-v3), which SB3 one-hot encodes. Rewards are
    still normalised; the observation statistics are kept (unused, never updated) so that saving, loading and
    syncing them work as for any run."""
    space = venv.observation_space
    norm_obs = isinstance(space, gym.spaces.Box) and not is_image_space(space)
    gamma = float(config.hyperparams.get("gamma", 0.99))
    normalizer = VecNormalize(venv, norm_obs=norm_obs, gamma=gamma, **kwargs)
    if not norm_obs:
        normalizer.obs_rms = RunningMeanStd(shape=space.shape)
    return normalizer


_SCHEDULED = ("learning_rate", "clip_range", "clip_range_vf")
"""SB3 arguments that take a schedule (a function of the remaining fraction of training) as well as a number."""


def schedule(name: str, value: Any) -> Any:
    """A number as it is; ``{schedule: linear, start: A, end: B}`` (``end`` default 0) as SB3's LinearSchedule
    from A at the start of training to B at its end (a resumed run carries on along the same line)."""
    if not isinstance(value, dict):
        return value
    unknown = set(value) - {"schedule", "start", "end"}
    try:  # YAML 1.1 reads 3e-4 as text
        start, end = float(value["start"]), float(value.get("end", 0.0))
    except (KeyError, TypeError, ValueError):
        start = end = None
    if value.get("schedule") != "linear" or unknown or start is None:
        raise ConfigError(f"{name} must be a number or {{schedule: linear, start: NUMBER, end: NUMBER}}, "
                          f"got {value!r}")
    from stable_baselines3.common.utils import LinearSchedule

    return LinearSchedule(start, end, 1.0)


def resolve_hyperparams(config: RunConfig) -> dict[str, Any]:
    """YAML-friendly hyperparameters -> SB3 constructor arguments (activation names -> classes, schedules
    given as mappings -> functions, see :func:`schedule`)."""
    params = dict(config.hyperparams)
    for name in _SCHEDULED:
        if name in params:
            params[name] = schedule(name, params[name])
    policy_kwargs = dict(params.get("policy_kwargs") or {})
    activation = policy_kwargs.get("activation_fn")
    if isinstance(activation, str):
        if activation not in _ACTIVATIONS:
            raise ConfigError(f"unknown activation_fn {activation!r}; choose one of: {', '.join(_ACTIVATIONS)}")
        policy_kwargs["activation_fn"] = _ACTIVATIONS[activation]
    if policy_kwargs:
        params["policy_kwargs"] = policy_kwargs
    return params


def build_model(config: RunConfig, venv: VecEnv) -> BaseAlgorithm:
    cls = algo_class(config.algo)
    check_action_space(config, venv.action_space)
    try:
        return cls("MlpPolicy", venv, seed=config.seed, device="cpu", verbose=0, **resolve_hyperparams(config))
    except (TypeError, ValueError, AssertionError) as exc:
        raise ConfigError(f"{config.algo} rejected the hyperparameters: {exc}") from None
