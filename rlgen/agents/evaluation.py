"""Evaluating a run's policy on the true env return, and rolling it out for demonstrations.

A run's periodic evaluations (eval.csv) start their episodes from the reset seed ``config.seed + 10,000``
(:func:`eval_seed`), so they never share start states with its training envs. :func:`evaluate` uses that seed
too unless given another, so ``evaluate(run_dir, episodes=config.eval_episodes)`` of a finished run repeats
the last row of its eval.csv.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv, VecNormalize

from rlgen.agents.config import ConfigError, RunConfig
from rlgen.agents.envstack import make_env_fn, policy_env, policy_observation, vec_normalize
from rlgen.agents.fast_policy import install_fast_forward
from rlgen.agents.model_file import load_model
from rlgen.agents.normalization import load_vecnormalize_stats
from rlgen.agents.rundir import BEST_DIR, BEST_FILE, MODEL_FILE, RunDir
from rlgen.agents.video import (
    FrameRecorder,
    VideoFile,
    check_renderer,
    check_video_path,
    follow_the_agent,
    render_fps,
    render_frame,
    renders_with_opengl,
    select_renderer,
)

EVAL_SEED_OFFSET = 10_000
"""A run's evaluation env is seeded with the run's seed plus this."""


def eval_seed(config: RunConfig) -> int:
    """The reset seed of a run's periodic evaluations."""
    return config.seed + EVAL_SEED_OFFSET


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """torch's intra-op thread count set to ``n`` inside the block and restored after it."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class Evaluator:
    """A separate, un-wrapped copy of the env: it scores the true env return with the training
    env's observation statistics frozen in (deterministic actions by default).

    A policy that reads more than the env's observation (InfoGAIL's latent code) gets it from the run's reward
    wrappers (:func:`rlgen.agents.envstack.policy_env`): drawn per episode from ``seed``, the same at every
    evaluation, or held at ``code``."""

    def __init__(self, config: RunConfig, seed: int, code: int | None = None,
                 render_kwargs: dict[str, Any] | None = None):
        self.seed = seed
        env_kwargs = config.env_kwargs if render_kwargs is None else {**config.env_kwargs, **render_kwargs}
        self.venv: VecEnv = DummyVecEnv([make_env_fn(config.env_id, env_kwargs, None, False)])
        try:
            self.venv = policy_env(self.venv, config, seed=seed, code=code)
        except ConfigError:
            self.venv.close()
            raise
        if config.normalize:
            self.venv = vec_normalize(self.venv, config, training=False, norm_reward=False)

    def sync(self, train_env: VecEnv) -> None:
        if isinstance(self.venv, VecNormalize) and isinstance(train_env, VecNormalize):
            self.venv.obs_rms = train_env.obs_rms.copy()

    def returns(self, model: BaseAlgorithm, episodes: int, deterministic: bool = True,
                callback: Callable[[dict[str, Any], dict[str, Any]], None] | None = None) -> np.ndarray:
        """``callback`` (SB3's ``evaluate_policy`` callback) is called after every step."""
        self.venv.seed(self.seed)  # every evaluation starts from the same states
        rewards, _ = evaluate_policy(
            model, self.venv, n_eval_episodes=episodes, deterministic=deterministic, return_episode_rewards=True,
            callback=callback,
        )
        return np.asarray(rewards, dtype=np.float64)

    def close(self) -> None:
        self.venv.close()


def load_run(run_dir: str | Path, best: bool = False) -> tuple[RunConfig, BaseAlgorithm, Path | None]:
    """The run's config, its final (or latest checkpointed) model, and its VecNormalize statistics file;
    with ``best``, the model of its best periodic evaluation (``best/``) instead."""
    run = RunDir(run_dir)
    config = run.read_config()
    if best and not run.has_best():
        why = (f"{BEST_DIR}/{BEST_FILE} is there without {BEST_DIR}/{MODEL_FILE} (restored without its models?)"
               if run.read_best() else "behaviour-cloning runs keep none, and runs trained before rlgen kept "
               "one or not yet evaluated have none")
        raise ConfigError(f"{run_dir} has no best model: {why}")
    model_path, stats_path = run.policy_file(best)
    if not model_path.is_file():
        raise ConfigError(f"{run_dir} holds no model yet (neither {MODEL_FILE} nor a checkpoint)")
    try:
        model = load_model(config, model_path)
    except ConfigError as exc:
        if not best and run.has_best():  # an older policy that may well be intact: say where it is
            raise ConfigError(f"{exc} (the policy of its best evaluation, best/, is another file: "
                              f"rlgen eval {run_dir} --best)") from None
        raise
    install_fast_forward(model.policy)  # the same actions, with less per-step overhead (plain MLPs only)
    return config, model, stats_path if config.normalize else None


T = TypeVar("T")


def _cannot_render(env_id: str, exc: Exception) -> ConfigError:
    """An env that refused render_mode, width or height when made, as a one-line error."""
    reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
    return ConfigError(f"{env_id} cannot render as asked: {reason}")


def _made_rendering(make: Callable[[dict[str, Any] | None], T], env_id: str,
                    render_kwargs: dict[str, Any] | None) -> T:
    """``make(render_kwargs)``: the env made to render as asked. An env whose constructor takes the frame size
    as ``render_kwargs={width, height}`` rather than as ``width`` and ``height`` (shimmy's dm_control tasks) is
    made that way; one that takes neither is a one-line error saying to drop --video-size."""
    try:
        return make(render_kwargs)
    except (TypeError, ValueError) as exc:
        if render_kwargs is None:
            raise
        first = exc
    size = {key: render_kwargs[key] for key in ("width", "height") if key in render_kwargs}
    if not size or "unexpected keyword argument 'width'" not in str(first) and \
            "unexpected keyword argument 'height'" not in str(first):
        raise _cannot_render(env_id, first) from None
    rest = {key: value for key, value in render_kwargs.items() if key not in size}
    try:
        return make({**rest, "render_kwargs": size})
    except (TypeError, ValueError):
        raise ConfigError(f"{env_id} cannot render as asked: it takes no frame size (neither width and height "
                          f"nor render_kwargs); drop --video-size") from None


def _render_kwargs(video: Path | None, size: tuple[int, int] | None) -> dict[str, Any] | None:
    """The env keywords of a recording (None without one), its renderer chosen: MuJoCo reads MUJOCO_GL when it
    first renders, so this comes before the env is made."""
    if video is None:
        return None
    select_renderer()
    kwargs: dict[str, Any] = {"render_mode": "rgb_array"}
    if size is not None:
        kwargs.update(width=int(size[0]), height=int(size[1]))
    return kwargs


def evaluate(run_dir: str | Path, episodes: int = 10, deterministic: bool = True, seed: int | None = None,
             code: int | None = None, best: bool = False, video: str | Path | None = None,
             video_steps: int | None = None, video_size: tuple[int, int] | None = None) -> np.ndarray:
    """Episode returns of the true env reward for the run's final (or latest checkpointed) policy, or with
    ``best`` the policy of its best periodic evaluation.

    ``seed`` (default: the run's evaluation seed, :func:`eval_seed`) seeds the evaluation env; an infogail
    run's policy runs each episode under a latent code drawn from it, or under ``code``.

    ``video`` (a .gif or .mp4 path, :mod:`rlgen.agents.video`) records the evaluated episodes, rendered offscreen
    (the first ``video_steps`` steps of each when given; ``video_size`` = (width, height) for envs that take
    ``width`` and ``height``, such as Gymnasium's MuJoCo tasks); the returns are the same as without it.
    """
    if episodes < 1:
        raise ConfigError(f"episodes must be a positive integer, got {episodes}")
    if video is not None:
        video = check_video_path(video)
    config, model, stats_path = load_run(run_dir, best)
    render_kwargs = _render_kwargs(video, video_size)
    with torch_threads(config.torch_threads):
        evaluator = _made_rendering(
            lambda kwargs: Evaluator(config, seed=eval_seed(config) if seed is None else seed, code=code,
                                     render_kwargs=kwargs), config.env_id, render_kwargs)
        try:
            if stats_path is not None:
                load_vecnormalize_stats(evaluator.venv, stats_path)  # type: ignore[arg-type]
                evaluator.venv.training = False  # type: ignore[attr-defined]
                evaluator.venv.norm_reward = False  # type: ignore[attr-defined]
            if video is None:
                return evaluator.returns(model, episodes, deterministic)
            check_renderer(evaluator.venv.get_attr("unwrapped"))
            follow_the_agent(evaluator.venv.get_attr("unwrapped"))
            with VideoFile(video, fps=render_fps(evaluator.venv)) as clip:
                return evaluator.returns(model, episodes, deterministic,
                                         callback=FrameRecorder(evaluator.venv, clip, video_steps))
        finally:
            evaluator.close()


def _check_same_spaces(config: RunConfig, env: Any) -> None:
    """A :class:`ConfigError` in one line unless ``env`` has the observation and action spaces of the run's own
    env (``config.env_id`` with its env keywords): its policy cannot act on another env otherwise."""
    own = make_env_fn(config.env_id, config.env_kwargs, None, False)()
    try:
        for name in ("observation_space", "action_space"):
            mine, theirs = getattr(own, name), getattr(env, name)
            if mine != theirs:
                raise ConfigError(f"{env.spec.id if env.spec else env} has {name} {theirs}, but the run's "
                                  f"{config.env_id} has {mine}: its policy cannot act there")
    finally:
        own.close()


def collect_demos(run_dir: str | Path, episodes: int | None = None, *, deterministic: bool = True, seed: int = 0,
                  progress_bar: bool = False, code: int | None = None, best: bool = False,
                  min_return: float | None = None, n_episodes: int | None = None, video: str | Path | None = None,
                  video_steps: int | None = None, video_size: tuple[int, int] | None = None,
                  env_id: str | None = None) -> Any:
    """Roll out a run's policy (with ``best``: that of its best periodic evaluation) for ``episodes`` and
    return its ``rlgen.imitation.demos.Trajectories``; with ``min_return``, only episodes that reach it
    count (``rlgen.imitation.collect_demos``).

    The policy sees observations normalised with the run's VecNormalize statistics (frozen), as in
    training; the demos record the raw observations and the clipped actions that reached the env.
    An infogail run's policy needs ``code``, the latent code it acts under in every episode.
    ``video``, ``video_steps``, ``video_size``: as in :func:`evaluate`; the video shows every episode rolled
    out, those ``min_return`` leaves out too. ``n_episodes`` is the old name of ``episodes`` (deprecated).
    ``env_id`` rolls the policy out on another Gymnasium id (with the run's env keywords) whose observation
    and action spaces are the run's env's, say a Hopper-v5 expert on Hopper-v4; the demos carry that id
    and its rewards. Other spaces: :class:`ConfigError`.
    """
    from rlgen.imitation import DemoError
    from rlgen.imitation import collect_demos as collect

    if n_episodes is not None:
        warnings.warn("collect_demos(n_episodes=...) is deprecated; use episodes=...", DeprecationWarning,
                      stacklevel=2)
        episodes = n_episodes if episodes is None else episodes
    if not isinstance(episodes, int) or isinstance(episodes, bool) or episodes < 1:
        raise ConfigError(f"episodes must be a positive integer, got {episodes!r}")
    if video is not None:
        video = check_video_path(video)
    config, model, stats_path = load_run(run_dir, best)
    try:
        observe = policy_observation(config, code)
    except ConfigError as exc:
        raise ConfigError(f"{run_dir}: {exc}") from None
    rollout_id = config.env_id if env_id is None else env_id
    render_kwargs = _render_kwargs(video, video_size)
    env = _made_rendering(lambda kwargs: make_env_fn(rollout_id, {**config.env_kwargs, **(kwargs or {})}, None,
                                                     False)(), rollout_id, render_kwargs)
    if rollout_id != config.env_id:
        try:
            _check_same_spaces(config, env)
        except ConfigError:
            env.close()
            raise
    normalizer: VecNormalize | None = None
    if stats_path is not None:  # the statistics are those of the policy's observations (coded ones, say)
        inner = policy_env(DummyVecEnv([lambda: env]), config, code=code)
        normalizer = vec_normalize(inner, config, training=False, norm_reward=False)
        load_vecnormalize_stats(normalizer, stats_path)
        normalizer.training = False

    def policy(obs: np.ndarray) -> np.ndarray:
        if observe is not None:
            obs = observe(obs)
        seen = normalizer.normalize_obs(obs) if normalizer is not None else obs
        return model.predict(seen, deterministic=deterministic)[0]

    clip = VideoFile(video, fps=float(env.metadata.get("render_fps") or 30)) if video is not None else None
    in_episode, opengl = 0, renders_with_opengl([env])

    def record(env: Any, episode_start: bool) -> None:
        nonlocal in_episode
        in_episode = 0 if episode_start else in_episode + 1
        if clip is not None and (video_steps is None or in_episode < video_steps):
            clip.add(render_frame(env.render, opengl))

    try:
        if clip is not None:
            check_renderer([env])
            follow_the_agent([env])
        # sampled actions repeat for a seed, without moving the caller's RNG
        with torch_threads(config.torch_threads), torch.random.fork_rng():
            torch.manual_seed(seed)
            demos = collect(policy, env, episodes, seed=seed, env_id=rollout_id, progress_bar=progress_bar,
                            min_return=min_return, on_step=record if clip is not None else None)
        if clip is not None:
            clip.close()
        return demos
    except DemoError as exc:
        raise ConfigError(str(exc)) from None
    finally:
        if clip is not None:
            clip.discard()  # after close(), nothing is left to discard
        env.close()
