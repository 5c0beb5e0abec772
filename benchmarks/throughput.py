"""Steps/s of rlgen's run loop and of VIME beside plain SB3, measured side by side in one run.

    python benchmarks/throughput.py [--steps 20000] [--repeats 3] [--only loop,layout,vime,gain,gail,density,checks]

Seven measurements, each a section of benchmarks/results/throughput.md (``--only`` re-measures some and keeps
the other sections as they were, each with the command and date that produced it):

- loop: PPO on Ant-v5 with its preset, plain SB3 (the same env stack and hyperparameters built by hand)
  against ``rlgen train`` without and with the preset's periodic evaluation;
- layout: PPO and TRPO on Hopper-v5, Ant-v5 and Humanoid-v5, each preset's transitions per rollout from one
  in-process env against four, and both against the raw env steps/s of the same env stack under random actions
  (training steps/s as a fraction of what the simulator alone allows);
- vime: PPO on rlgen/SparseHalfCheetah-v0, ``rlgen train`` without and with the VIME bonus (defaults);
- gain: VIME's information gain per transition, ``second_order`` for a rollout-sized batch against
  ``exact`` transition by transition, with SparseHalfCheetah's BNN (18-d observation, 6-d action);
- gail: PPO on Hopper-v5 without and with GAIL (defaults, and with a gradient penalty of 10; the
  demonstrations are 10 episodes of a random policy, which costs the same as an expert's), the three stacks
  trained one rollout at a time in turn, and GAIL's own share of the GAIL runs' time; with the PPO preset's one
  env of 2,048 steps and with the imitation benchmarks' four envs of 512;
- density: PPO on rlgen/SparseHalfCheetah-v0 with the density-model bonus (each model), beside plain PPO;
- checks: PPO on Hopper-v5 through ``rlgen train``: torch's distribution argument checks on and off, SB3's
  forward and rlgen's functional one.

Rows alternate within each repeat so all see the same machine load; tables give the median over
repeats. steps/s = training steps / seconds inside SB3's ``learn()`` (rlgen's callbacks included: checkpoints,
plots, periodic evaluation, VIME's bonus and BNN training); the final evaluation after ``learn()`` is not
counted.
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from stable_baselines3.common.utils import set_random_seed  # noqa: E402
from stable_baselines3.common.vec_env import VecNormalize  # noqa: E402

from rlgen.agents import train  # noqa: E402
from rlgen.agents.config import algo_class, build_config  # noqa: E402
from rlgen.agents.envstack import make_vec_env, resolve_hyperparams  # noqa: E402
from rlgen.agents.presets import preset_for  # noqa: E402
from rlgen.generative import BNN  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "throughput.md"


def plain_sb3(config) -> float:
    """The same algorithm, hyperparameters and env stack built by hand with SB3 alone."""
    torch.set_num_threads(1)
    set_random_seed(config.seed)
    venv = VecNormalize(make_vec_env(config), gamma=config.hyperparams.get("gamma", 0.99))
    model = algo_class(config.algo)("MlpPolicy", venv, seed=config.seed, device="cpu", verbose=0,
                                    **resolve_hyperparams(config))
    start = time.perf_counter()
    model.learn(config.total_steps)
    elapsed = time.perf_counter() - start
    venv.close()
    return model.num_timesteps / elapsed


def rlgen_loop(config, out: Path, name: str) -> float:
    config.out_dir, config.run_name = str(out), name
    result = train(config)
    return result.timesteps / result.learn_time


def table(rows: dict[str, list[float]], unit: str, base: str) -> list[str]:
    """Medians and their ratio to ``base``'s; beside it the median of the per-repeat ratios (each row against
    ``base`` run next to it in the same repeat), which load that drifts between repeats moves less."""
    lines = [f"| measurement | {unit} (median) | repeats | ratio to {base} | paired ratio (median; per repeat) |",
             "|---|---|---|---|---|"]
    ref = statistics.median(rows[base])
    for name, values in rows.items():
        med = statistics.median(values)
        paired = [v / b for v, b in zip(values, rows[base], strict=True)]
        lines.append(f"| {name} | {med:,.0f} | {', '.join(f'{v:,.0f}' for v in values)} | {med / ref:.3f} | "
                     f"{statistics.median(paired):.3f}; {', '.join(f'{r:.2f}' for r in paired)} |")
    return lines


def measure_loop(steps: int, repeats: int, tmp: Path) -> list[str]:
    def config(**fields):
        return build_config("ppo", "Ant-v5", total_steps=steps, progress_bar=False, **fields)

    rows: dict[str, list[float]] = {"plain SB3": [], "rlgen train (no eval)": [], "rlgen train (preset eval)": []}
    for i in range(repeats):
        rows["plain SB3"].append(plain_sb3(config()))
        rows["rlgen train (no eval)"].append(rlgen_loop(config(eval_freq=0), tmp, f"loop-noeval{i}"))
        rows["rlgen train (preset eval)"].append(rlgen_loop(config(), tmp, f"loop-eval{i}"))
        print(f"loop {i + 1}/{repeats}: " + ", ".join(f"{k} {v[-1]:.0f}" for k, v in rows.items()), flush=True)
    return [f"## rlgen's run loop: PPO on Ant-v5 ({steps:,} steps per run)", "",
            *table(rows, "steps/s", "plain SB3"), "",
            "The preset evaluates 5 episodes every 25,000 steps, so the 'preset eval' row includes "
            "evaluation episodes only when the budget reaches 25,000 steps."]


LAYOUT_TASKS = ("Hopper-v5", "Ant-v5", "Humanoid-v5")


def raw_env_rate(config, steps: int, seed: int = 0) -> float:
    """Env steps/s of ``config``'s env stack as a run builds it (its envs and env_kwargs, Monitor, the finite
    guard; no VecNormalize, no agent) under uniformly random actions drawn beforehand: what the simulator
    and Gymnasium alone allow, the ceiling of training steps/s."""
    venv = make_vec_env(config)
    space = venv.action_space
    rng = np.random.default_rng(seed)
    n = max(1, steps // config.n_envs)
    actions = rng.uniform(space.low, space.high, size=(n, config.n_envs, *space.shape)).astype(space.dtype)
    venv.seed(seed)
    venv.reset()
    start = time.perf_counter()
    for action in actions:
        venv.step(action)
    elapsed = time.perf_counter() - start
    venv.close()
    return n * config.n_envs / elapsed


def measure_layout(steps: int, repeats: int, tmp: Path) -> list[str]:
    """Each preset's rollout (transitions per update) from one env against four in-process envs, and both
    against the raw env steps/s of the same layout, measured beside them in each repeat."""
    cells = [(algo, env_id) for env_id in LAYOUT_TASKS for algo in ("ppo", "trpo")]
    presets = {cell: preset_for(*cell) for cell in cells}
    rollout = {cell: preset["hyperparams"]["n_steps"] * preset.get("n_envs", 1) for cell, preset in presets.items()}
    lines = [f"## Env layout: one env against four, and the raw env ({steps:,} steps per run)", "",
             "| agent, task (transitions per rollout) | raw env, 1 env: steps/s | training, 1 env: steps/s | "
             "fraction of raw | raw env, 4 envs | training, 4 envs | fraction of raw | training, 4 envs / 1 env |",
             "|---|---|---|---|---|---|---|---|"]
    rows: dict[tuple[str, str, int, str], list[float]] = {
        (a, e, n, kind): [] for a, e in cells for n in (1, 4) for kind in ("raw", "train")}
    for i in range(repeats):
        for algo, env_id in cells:
            for n_envs in (1, 4):
                config = build_config(algo, env_id, total_steps=steps, n_envs=n_envs, eval_freq=0, progress_bar=False,
                                      overrides=[f"n_steps={rollout[(algo, env_id)] // n_envs}"])
                rows[(algo, env_id, n_envs, "raw")].append(raw_env_rate(config, steps, seed=i))
                rows[(algo, env_id, n_envs, "train")].append(
                    rlgen_loop(config, tmp, f"layout-{algo}-{env_id}-{n_envs}-{i}"))
        print(f"layout {i + 1}/{repeats}: " + ", ".join(f"{a} {e} x{n} {k} {v[-1]:.0f}"
                                                        for (a, e, n, k), v in rows.items()), flush=True)
    for algo, env_id in cells:
        med = {(n, kind): statistics.median(rows[(algo, env_id, n, kind)]) for n in (1, 4) for kind in ("raw", "train")}
        # the fraction per repeat (training beside the raw env it ran next to), then its median
        frac = {n: statistics.median(t / r for t, r in zip(rows[(algo, env_id, n, "train")],
                                                           rows[(algo, env_id, n, "raw")], strict=True))
                for n in (1, 4)}
        lines.append(f"| {algo.upper()}, {env_id} ({rollout[(algo, env_id)]:,}) | {med[(1, 'raw')]:,.0f} | "
                     f"{med[(1, 'train')]:,.0f} | {frac[1]:.2f} | {med[(4, 'raw')]:,.0f} | {med[(4, 'train')]:,.0f} | "
                     f"{frac[4]:.2f} | {med[(4, 'train')] / med[(1, 'train')]:.2f} |")
    return [*lines, "",
            "Both layouts collect the preset's transitions per rollout (n_steps x n_envs) and take the same updates "
            "on them; with four envs the policy's forward pass, the VecNormalize update and SB3's per-step "
            "bookkeeping run once per four env steps. Raw env: the same env stack (the preset's env_kwargs, Monitor, "
            "the finite guard; no VecNormalize, no agent) stepped with random actions drawn beforehand, measured "
            "next to each training run; 'fraction of raw' is the median over repeats of training steps/s over the "
            "raw env's steps/s of the same repeat (what the agent's forward pass, its updates and rlgen's run loop "
            "leave of the simulator's speed). The presets of Ant-v5 (PPO and TRPO) and TRPO's Humanoid-v5 use four "
            "envs; the other MuJoCo presets one."]


def measure_vime(steps: int, repeats: int, tmp: Path) -> list[str]:
    def config(**fields):
        return build_config("ppo", "rlgen/SparseHalfCheetah-v0", total_steps=steps, progress_bar=False,
                            eval_freq=0, **fields)

    rows: dict[str, list[float]] = {"PPO": [], "PPO + VIME": []}
    for i in range(repeats):
        rows["PPO"].append(rlgen_loop(config(), tmp, f"ppo{i}"))
        rows["PPO + VIME"].append(rlgen_loop(config(bonus="vime"), tmp, f"vime{i}"))
        print(f"vime {i + 1}/{repeats}: " + ", ".join(f"{k} {v[-1]:.0f}" for k, v in rows.items()), flush=True)
    return [f"## VIME's cost: PPO on rlgen/SparseHalfCheetah-v0 ({steps:,} steps per run)", "",
            *table(rows, "steps/s", "PPO"), "",
            "VIME with its defaults: a 1x32 BNN, information gain (second_order) for all 2,048 transitions of "
            "a rollout in one batch, then 500 BNN minibatch steps of 10 on the replay pool after each rollout, "
            "both with hand-written gradients (BNN.likelihood_grads, the prior's part in closed form) and a "
            "fused Adam; the section 'Information gain per transition' times them against autograd. Training the "
            "BNN in a worker thread beside PPO was measured slower (0.48 at commit 984b32e) and removed. "
            "Target: >= 0.8."]


def measure_gain(repeats: int) -> list[str]:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    bnn = BNN(18 + 6, 18)
    x, y = torch.randn(2048, 24), torch.randn(2048, 18)
    rows: dict[str, list[float]] = {"second_order, batch of 2,048": [], "second_order, one at a time": [],
                                    "exact (5 Adam steps each)": []}
    for method in ("second_order", "exact"):  # warm-up, not timed
        bnn.information_gain(x[:2], y[:2], method=method)
    for _ in range(repeats):
        start = time.perf_counter()
        bnn.information_gain(x, y, method="second_order")
        rows["second_order, batch of 2,048"].append(1e6 * (time.perf_counter() - start) / len(x))
        start = time.perf_counter()
        for i in range(64):
            bnn.information_gain(x[i:i + 1], y[i:i + 1], method="second_order")
        rows["second_order, one at a time"].append(1e6 * (time.perf_counter() - start) / 64)
        start = time.perf_counter()
        bnn.information_gain(x[:64], y[:64], method="exact")
        rows["exact (5 Adam steps each)"].append(1e6 * (time.perf_counter() - start) / 64)
    med = {k: statistics.median(v) for k, v in rows.items()}
    speedup = med["exact (5 Adam steps each)"] / med["second_order, batch of 2,048"]
    lines = ["## Information gain per transition (BNN 24 -> 32 -> 18, 10 Monte-Carlo samples)", "",
             "| method | us per transition (median) | repeats |", "|---|---|---|"]
    lines += [f"| {k} | {med[k]:,.0f} | {', '.join(f'{v:,.0f}' for v in rows[k])} |" for k in rows]
    lines += ["", f"Batched second_order is {speedup:,.0f}x faster per transition than exact.", "",
              *measure_bnn_step(bnn, repeats)]
    return lines


def measure_bnn_step(bnn: BNN, repeats: int, steps: int = 500, batch_size: int = 10) -> list[str]:
    """VIME's BNN training after each rollout (``steps`` Adam steps on minibatches of ``batch_size``): autograd on
    ``BNN.loss`` with torch's default Adam, against ``BNN.elbo_step`` (hand-written gradients) with a fused Adam."""
    x, y = torch.randn(steps, batch_size, bnn.in_dim), torch.randn(steps, batch_size, bnn.out_dim)
    noise = [bnn.sample_noise(batch_size) for _ in range(steps)]
    rows: dict[str, list[float]] = {"autograd on BNN.loss, Adam": [], "BNN.elbo_step, fused Adam": []}
    for _ in range(repeats):
        model = copy.deepcopy(bnn)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        start = time.perf_counter()
        for k in range(steps):
            optimizer.zero_grad(set_to_none=True)
            loss = model.kl_to_prior() / 1000 - model.log_likelihood(x[k], y[k], noise=noise[k]).sum()
            loss.backward()
            optimizer.step()
        rows["autograd on BNN.loss, Adam"].append(1e3 * (time.perf_counter() - start) / steps)
        model = copy.deepcopy(bnn)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)
        start = time.perf_counter()
        for k in range(steps):
            model.elbo_step(x[k], y[k], noise[k], optimizer, n_batches=1000)
        rows["BNN.elbo_step, fused Adam"].append(1e3 * (time.perf_counter() - start) / steps)
    med = {k: statistics.median(v) for k, v in rows.items()}
    lines = [f"BNN training, one minibatch step of {batch_size} (VIME takes {steps} after each rollout):", "",
             "| method | ms per step (median) | repeats |", "|---|---|---|"]
    lines += [f"| {k} | {med[k]:.3f} | {', '.join(f'{v:.3f}' for v in rows[k])} |" for k in rows]
    speedup = med["autograd on BNN.loss, Adam"] / med["BNN.elbo_step, fused Adam"]
    lines += ["", f"The hand-written step is {speedup:.1f}x faster (the same gradients: tests/test_bnn.py)."]
    return lines


class _Clock:
    """Seconds per object (by identity) that a benchmark instrument's timed methods add up: ``clock[obj]``."""

    def __init__(self) -> None:
        self.seconds: dict[int, float] = {}

    def __getitem__(self, obj: Any) -> float:
        return self.seconds.get(id(obj), 0.0)

    def _add(self, obj: Any, seconds: float) -> None:
        self.seconds[id(obj)] = self[obj] + seconds


class GailClock(_Clock):
    """Seconds spent in each GAIL wrapper's own code while the clock is entered: ``GAIL.step_wait`` less the
    time of the envs it wraps (so the discriminator's reward, the transition buffer and the discriminator's
    updates), and its ``GAILCallback``'s rollout-end logging. ``clock[wrapper]`` reads one wrapper's
    seconds. A benchmark instrument: it wraps the two methods on their classes and puts them back on exit.
    It times GAIL only: InfoGAIL's own ``step_wait`` (its information reward, its posterior's training) is
    not timed; ``GAIL.step_async`` (it keeps a reference to the actions, which its step_wait copies) is not
    either, and the clock itself adds a few microseconds per step to the wrapper it times.

    A share of ``learn()`` time measured so is GAIL's cost apart from what its reward does to the policy
    (when episodes end, hence what the envs cost)."""

    def __enter__(self) -> GailClock:
        from rlgen.imitation.gail import GAIL, GAILCallback

        self._saved = (GAIL, GAIL.step_wait, GAILCallback, GAILCallback._on_rollout_end)
        step_wait, on_rollout_end = GAIL.step_wait, GAILCallback._on_rollout_end
        clock = self

        def timed_step_wait(gail):
            inner, inner_step_wait = gail.venv, gail.venv.step_wait
            inner_seconds = 0.0

            def timed_inner():
                nonlocal inner_seconds
                start = time.perf_counter()
                try:
                    return inner_step_wait()
                finally:
                    inner_seconds += time.perf_counter() - start

            inner.step_wait = timed_inner  # an instance attribute, for this call only
            start = time.perf_counter()
            try:
                return step_wait(gail)
            finally:
                clock._add(gail, time.perf_counter() - start - inner_seconds)
                del inner.step_wait

        def timed_on_rollout_end(callback):
            start = time.perf_counter()
            try:
                return on_rollout_end(callback)
            finally:
                clock._add(callback.gail, time.perf_counter() - start)

        GAIL.step_wait, GAILCallback._on_rollout_end = timed_step_wait, timed_on_rollout_end
        return self

    def __exit__(self, *exc) -> None:
        gail, step_wait, callback, on_rollout_end = self._saved
        gail.step_wait, callback._on_rollout_end = step_wait, on_rollout_end


def interleaved_stacks(configs: dict[str, Any], steps: int
                       ) -> tuple[dict[str, float], dict[str, float], dict[str, tuple[float, int]]]:
    """Each config's env stack, reward wrappers and agent, built as ``rlgen train`` builds them, then trained
    one rollout at a time in turn (``learn(rollout, reset_num_timesteps=False)``), so that every row sees
    the machine of the same seconds. Returns per config steps/s, GAIL's share of the learn() time, and the
    envs' own time per step (microseconds; the DummyVecEnv's step_wait, Monitor and env) with the episodes
    finished: what the agent's reward does to the envs' cost, through where its episodes go and end."""
    from stable_baselines3.common.callbacks import CallbackList

    from rlgen.agents.envstack import attach_reward_wrappers, build_model, vec_normalize
    from rlgen.agents.run import install_fast_forward, unchecked_distributions

    torch.set_num_threads(1)
    stacks = {}
    for name, config in configs.items():
        set_random_seed(config.seed)
        venv, wrappers = attach_reward_wrappers(make_vec_env(config), config)
        callbacks = [wrapper.callback for wrapper in wrappers]
        model = build_model(config, vec_normalize(venv, config))
        install_fast_forward(model.policy)  # as the run loop does
        stacks[name] = (model, CallbackList(callbacks), wrappers, config.hyperparams["n_steps"] * config.n_envs)
    seconds = dict.fromkeys(configs, 0.0)
    done = dict.fromkeys(configs, 0)
    try:
        with GailClock() as clock, EnvClock() as env_clock, unchecked_distributions():
            while min(done.values()) < steps:
                for name, (model, callback, _, rollout) in stacks.items():
                    start = time.perf_counter()
                    model.learn(rollout, callback=callback, reset_num_timesteps=False)
                    seconds[name] += time.perf_counter() - start
                    done[name] = model.num_timesteps
        envs = {name: _dummy_vec_env(stacks[name][0].get_env()) for name in configs}
        env_cost = {name: (1e6 * env_clock[envs[name]] / (done[name] / envs[name].num_envs),
                           sum(len(env.get_episode_lengths()) for env in envs[name].envs)) for name in configs}
    finally:
        for model, *_ in stacks.values():
            model.get_env().close()
    return ({name: done[name] / seconds[name] for name in configs},
            {name: sum(clock[w] for w in stacks[name][2]) / seconds[name] for name in configs}, env_cost)


def _dummy_vec_env(venv: Any) -> Any:
    from stable_baselines3.common.vec_env import DummyVecEnv

    while not isinstance(venv, DummyVecEnv):
        venv = venv.venv
    return venv


class EnvClock(_Clock):
    """Wall-clock seconds spent in each DummyVecEnv's ``step_wait`` (its envs' steps, Monitors and resets), per
    instance, while in the ``with`` block: a benchmark instrument, like :class:`GailClock`, timing every row."""

    def __enter__(self) -> EnvClock:
        from stable_baselines3.common.vec_env import DummyVecEnv

        self._saved = DummyVecEnv.step_wait
        step_wait, clock = DummyVecEnv.step_wait, self

        def timed(venv):
            start = time.perf_counter()
            try:
                return step_wait(venv)
            finally:
                clock._add(venv, time.perf_counter() - start)

        DummyVecEnv.step_wait = timed
        return self

    def __exit__(self, *exc) -> None:
        from stable_baselines3.common.vec_env import DummyVecEnv

        DummyVecEnv.step_wait = self._saved


def gail_reward_after(demos_path: Path, repeats: int) -> dict[str, Any]:
    """The per-step discriminator reward timed after nothing, after an env step and after a policy forward."""
    import gymnasium as gym
    from stable_baselines3 import PPO

    from rlgen.imitation import GAIL, load_demos

    torch.set_num_threads(1)
    config = build_config("ppo", "Hopper-v5", total_steps=2048, progress_bar=False, eval_freq=0)
    venv = make_vec_env(config)
    gail = GAIL(venv, load_demos(demos_path))
    model = PPO("MlpPolicy", venv, device="cpu", **resolve_hyperparams(config))
    env = gym.make("Hopper-v5")
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(1, 11)).astype(np.float32)
    act = rng.uniform(-1, 1, (1, 3)).astype(np.float32)
    obs_t = torch.as_tensor(obs)

    def forward() -> None:
        with torch.no_grad():
            model.policy(obs_t)

    before = {"another call (warm)": lambda: None, "a Hopper-v5 env step": lambda: env.step(env.action_space.sample()),
              "a policy forward pass": forward}
    times: dict[str, list[float]] = {name: [] for name in before}
    calls = 1000 * repeats
    for _ in range(calls):
        for name, step in before.items():
            step()
            start = time.perf_counter()
            gail.discriminator.step_reward(obs, act, None)
            times[name].append(time.perf_counter() - start)
    env.close()
    venv.close()
    return {"calls": calls, "medians": {name: 1e6 * statistics.median(values) for name, values in times.items()}}


GAIL_LAYOUTS = {"one env of 2,048 steps (the PPO Hopper-v5 preset)": {},
                "four envs of 512 steps (the imitation benchmarks' layout)": {"n_envs": 4, "n_steps": 512}}


def measure_gail(steps: int, repeats: int, tmp: Path) -> list[str]:
    from rlgen.imitation import collect_demos, save_demos

    rng = np.random.default_rng(0)
    demos_path = tmp / "hopper_random_demos.npz"
    env = __import__("gymnasium").make("Hopper-v5")
    save_demos(demos_path, collect_demos(lambda obs: rng.uniform(-1, 1, env.action_space.shape).astype(np.float32),
                                         env, 10, env_id="Hopper-v5"))
    env.close()

    def config(layout: dict[str, int], **fields):
        hyperparams = {"n_steps": layout["n_steps"]} if "n_steps" in layout else {}
        return build_config("ppo", "Hopper-v5", total_steps=steps, progress_bar=False, eval_freq=0,
                            n_envs=layout.get("n_envs", 1), hyperparams=hyperparams, **fields)

    gp = "PPO + GAIL, gradient penalty 10"
    cold = gail_reward_after(demos_path, repeats)
    lines = [f"## GAIL's cost: PPO on Hopper-v5 ({-(-steps // 2048) * 2048:,} steps per run: whole 2,048-transition "
             "rollouts)", ""]
    for layout_name, layout in GAIL_LAYOUTS.items():
        configs = {"PPO": config(layout),
                   "PPO + GAIL": config(layout, imitation="gail", demos=str(demos_path)),
                   gp: config(layout, imitation="gail", demos=str(demos_path),
                              imitation_kwargs={"gradient_penalty": 10.0})}
        rows: dict[str, list[float]] = {name: [] for name in configs}
        share: dict[str, list[float]] = {name: [] for name in configs if name != "PPO"}
        env_cost: dict[str, list[tuple[float, int]]] = {name: [] for name in configs}
        for i in range(repeats):
            speed, gail_share, envs = interleaved_stacks(configs, steps)
            for name in configs:
                rows[name].append(speed[name])
                env_cost[name].append(envs[name])
            for name in share:
                share[name].append(gail_share[name])
            print(f"gail, {layout_name}, {i + 1}/{repeats}: " + ", ".join(f"{k} {v[-1]:.0f}" for k, v in rows.items())
                  + "; GAIL's share: " + ", ".join(f"{k} {v[-1]:.3f}" for k, v in share.items())
                  + "; envs' us/step, episodes: " + ", ".join(f"{k} {v[-1][0]:.0f}, {v[-1][1]}"
                                                             for k, v in env_cost.items()), flush=True)
        inside = ["| GAIL setting | GAIL's share of learn() (median) | repeats | 1 - share |", "|---|---|---|---|"]
        for name, values in share.items():
            med = statistics.median(values)
            inside.append(f"| {name} | {med:.3f} | {', '.join(f'{v:.3f}' for v in values)} | {1 - med:.3f} |")
        envs_table = ["| measurement | envs' time per VecEnv step, us (median) | repeats | episodes finished (median) |",
                      "|---|---|---|---|"]
        for name, values in env_cost.items():
            micro, episodes = [v[0] for v in values], [v[1] for v in values]
            envs_table.append(f"| {name} | {statistics.median(micro):.0f} | {', '.join(f'{v:.0f}' for v in micro)} "
                              f"| {statistics.median(episodes):.0f} |")
        lines += [f"### {layout_name[0].upper()}{layout_name[1:]}", "", *table(rows, "steps/s", "PPO"), "",
                  "GAIL's own time (its step_wait less the envs it wraps, and its callback; GailClock) as a share "
                  "of each GAIL run's learn() time:", "", *inside, "",
                  "The envs' own time (the DummyVecEnv's step_wait: env steps, Monitors, resets; EnvClock) per VecEnv "
                  "step (one step of each of its envs), and the episodes the run finished: a learner rewarded otherwise goes elsewhere and ends its "
                  "episodes at other times, which changes what its envs cost apart from GAIL's code:", "",
                  *envs_table, ""]
    lines += ["### The per-step reward, warm and cold", "",
              "`Discriminator.step_reward` on one Hopper-v5 transition (the defaults' 2 x 100 tanh network), timed "
              "alone, each call right after another, and each call right after a Hopper-v5 env step or a forward "
              "pass of the PPO preset's policy (what runs between two of GAIL's steps in training); median of "
              f"{cold['calls']:,} calls each:", "",
              "| the call runs after | microseconds per call (median) |", "|---|---|",
              *(f"| {name} | {value:.1f} |" for name, value in cold["medians"].items()), ""]
    return lines + [
        "Each repeat builds the three runs' stacks of a layout as `rlgen train` does (env with Monitor but no log "
        "file, reward wrapper, VecNormalize, the PPO preset with the layout's envs and rollout, the run loop's fast "
        "policy forward and unchecked distributions) and trains them one rollout at a time in turn, so every row "
        "sees the machine of the same seconds (identical seeded runs, run whole one after another, varied by more "
        "than GAIL costs). GAIL with its defaults: the discriminator's rewards of a rollout computed in one batch at "
        "its end and added into the rollout buffer, the VecNormalize outside replayed with them (since commit "
        "'GAIL computes a rollout's rewards at its end'; before, one forward pass per env step for all envs at "
        "once) and its transitions made in one batch there too (since commit 'GAIL: a deferred rollout's steps are "
        "kept as they come'; before, each step's made and stored at the step), one discriminator update "
        "per 2,048 transitions; the gradient penalty (the imitation benchmark's setting) adds a second backward pass to "
        "that update. Target: >= 0.95 of PPO's steps/s. The clock runs in GAIL's rows only (a few microseconds "
        "per step), so their ratios lean low."]


def measure_density(steps: int, repeats: int, tmp: Path) -> list[str]:
    def config(**fields):
        return build_config("ppo", "rlgen/SparseHalfCheetah-v0", total_steps=steps, progress_bar=False,
                            eval_freq=0, **fields)

    models = ("made", "pixelcnn", "vae")
    rows: dict[str, list[float]] = {"PPO": [], "PPO + VIME": [], **{f"PPO + density ({m})": [] for m in models}}
    for i in range(repeats):
        rows["PPO"].append(rlgen_loop(config(), tmp, f"dppo{i}"))
        rows["PPO + VIME"].append(rlgen_loop(config(bonus="vime"), tmp, f"dvime{i}"))
        for m in models:
            rows[f"PPO + density ({m})"].append(
                rlgen_loop(config(bonus="density", bonus_kwargs={"model": m}), tmp, f"density-{m}{i}"))
        print(f"density {i + 1}/{repeats}: " + ", ".join(f"{k} {v[-1]:.0f}" for k, v in rows.items()), flush=True)
    return [f"## Density-model bonus cost: PPO on rlgen/SparseHalfCheetah-v0 ({steps:,} steps per run)", "",
            *table(rows, "steps/s", "PPO"), "",
            "DensityBonus with its defaults (target state): prediction gains of a whole rollout in one batch, then "
            "the model's training steps on its replay pool."]


def measure_checks(steps: int, repeats: int, tmp: Path) -> list[str]:
    """``rlgen train`` (PPO preset on Hopper-v5) as it runs (torch's distribution argument checks off inside
    learn(), the policy's fast forward), against the same with SB3's own forward, and with the checks on too
    (the run loop's pieces replaced by no-ops)."""
    import contextlib

    from rlgen.agents import run as run_module

    def config():
        return build_config("ppo", "Hopper-v5", total_steps=steps, progress_bar=False, eval_freq=0)

    unchecked, fast = run_module.unchecked_distributions, run_module.install_fast_forward
    variants = {"checks on, SB3's forward": (contextlib.nullcontext, lambda policy: False),
                "checks off, SB3's forward": (unchecked, lambda policy: False),
                "checks off, fast forward (rlgen)": (unchecked, fast)}
    rows: dict[str, list[float]] = {name: [] for name in variants}
    try:
        for i in range(repeats):
            for j, (name, (context, install)) in enumerate(variants.items()):
                run_module.unchecked_distributions, run_module.install_fast_forward = context, install
                rows[name].append(rlgen_loop(config(), tmp, f"checks{i}-{j}"))
            print(f"checks {i + 1}/{repeats}: " + ", ".join(f"{k} {v[-1]:.0f}" for k, v in rows.items()), flush=True)
    finally:
        run_module.unchecked_distributions, run_module.install_fast_forward = unchecked, fast
    return [f"## The policy call at each env step: PPO on Hopper-v5, `rlgen train` ({steps:,} steps per run)", "",
            *table(rows, "steps/s", "checks on, SB3's forward"), "",
            "torch.distributions checks a Normal's parameters and each sample's support at every env step by "
            "default; rlgen's run loop turns that off inside learn() (rlgen.agents.run.unchecked_distributions; "
            "a diverged policy's NaN action is stopped by FiniteGuard instead) and gives a plain MLP policy a "
            "functional forward (rlgen.agents.fast_policy: the same tensor operations without per-module "
            "bookkeeping). Neither changes a number: tests/test_fast_policy.py trains PPO, TRPO and A2C with "
            "and without it to bit-identical parameters."]


SECTIONS = ("loop", "layout", "vime", "gain", "gail", "density", "checks")
MARK = "<!-- section: {} -->"


def merge_sections(path: Path, header: list[str], new: dict[str, list[str]]) -> str:
    """The report with the sections measured now replaced and the others kept as they were."""
    old: dict[str, str] = {}
    if path.is_file():
        text = path.read_text()
        for name in SECTIONS:
            start = text.find(MARK.format(name))
            if start < 0:
                continue
            ends = [text.find(MARK.format(other), start + 1) for other in SECTIONS]
            end = min([e for e in ends if e > start] or [len(text)])
            old[name] = text[start:end].rstrip() + "\n"
    parts = ["\n".join(header) + "\n"]
    for name in SECTIONS:
        if name in new:
            parts.append("\n".join([MARK.format(name), *new[name]]) + "\n")
        elif name in old:
            parts.append(old[name])
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20_000, help="env steps per training run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", default=",".join(SECTIONS),
                        help=f"comma-separated measurements to run, of {','.join(SECTIONS)} (default: all)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave results/ alone")
    args = parser.parse_args(argv)
    only = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = sorted(set(only) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown measurements {unknown}; choose from {', '.join(SECTIONS)}")
    command = "python benchmarks/throughput.py " + " ".join(argv if argv is not None else sys.argv[1:])
    stamp = (f"`{command.strip()}` — median of {args.repeats} interleaved repeats, 1 torch thread, "
             f"{platform.machine()}, {os.cpu_count()} cores, numpy {np.__version__}, torch {torch.__version__}, "
             f"{time.strftime('%Y-%m-%d')}, load average {os.getloadavg()[0]:.2f} at the start (other jobs on the "
             f"machine).")
    header = ["# Throughput", "",
              "Each section gives the command that measured it. The machine may have been shared with other jobs; "
              "ratios come from rows run side by side (interleaved within each repeat).", ""]
    measures = {"loop": lambda tmp: measure_loop(args.steps, args.repeats, tmp),
                "layout": lambda tmp: measure_layout(args.steps, args.repeats, tmp),
                "vime": lambda tmp: measure_vime(args.steps, args.repeats, tmp),
                "gain": lambda tmp: measure_gain(args.repeats),
                "gail": lambda tmp: measure_gail(args.steps, args.repeats, tmp),
                "density": lambda tmp: measure_density(args.steps, args.repeats, tmp),
                "checks": lambda tmp: measure_checks(args.steps, args.repeats, tmp)}
    new: dict[str, list[str]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in SECTIONS:
            if name in only:
                lines = measures[name](Path(tmp))
                new[name] = [lines[0], "", stamp, *lines[1:], ""]
                print("\n".join(new[name]), flush=True)
    if not args.no_write:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        text = merge_sections(RESULTS, header, new)
        tmp_path = RESULTS.with_suffix(".md.tmp")
        tmp_path.write_text(text)
        tmp_path.replace(RESULTS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
