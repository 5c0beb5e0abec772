"""Presets keyed by (algorithm, env id): settings known to learn on each task, applied under the user's.

The MuJoCo PPO settings are the classic ones of the PPO paper (2,048-step rollouts, 10 epochs of
64-sample minibatches, 64x64 tanh networks), which SB3's defaults follow. TRPO takes the
rl-baselines3-zoo MuJoCo choices (64x64 ReLU, 20 critic updates, 25 CG steps, damping 0.1) with one
in-process env of 2,048 steps (faster than subprocess envs on a 2-core machine). Four in-process envs of 512
steps, the same 2,048 transitions per update, run 1.3-2x faster still (benchmarks/results/throughput.md,
"Env layout"; ``-p n_envs=4 -p n_steps=512``): the imitation benchmarks, the tuned PPO and TRPO Ant-v5 presets and
the TRPO Humanoid-v5 preset (below) use them; the other MuJoCo presets keep one env, with which the committed
sparse-reward results were trained. Sparse
classic-control tasks use 4 envs x 512 steps, the layout benchmarks/results/sparse.md was run with, and so do
the third-party sparse tasks (DeepMind Control Suite, Gymnasium-Robotics mazes), which have no results here yet.
"""

from __future__ import annotations

import copy
from typing import Any

from rlgen.envs.suites import SUITE_TASKS

# MuJoCo episodes are up to 1,000 steps: evaluating 5 of them every 25k steps costs ~8% of a run.
_MUJOCO_EVAL = {"eval_freq": 25_000, "eval_episodes": 5}

_PPO_MUJOCO: dict[str, Any] = {
    **_MUJOCO_EVAL,
    "normalize": True,
    "hyperparams": {
        "n_steps": 2048,
        "batch_size": 64,
        "n_epochs": 10,
        "learning_rate": 3e-4,
        "gamma": 0.99,
        "gae_lambda": 0.95,
        "clip_range": 0.2,
        "ent_coef": 0.0,
        "policy_kwargs": {"net_arch": {"pi": [64, 64], "vf": [64, 64]}, "activation_fn": "tanh"},
    },
}

_TRPO_MUJOCO: dict[str, Any] = {
    **_MUJOCO_EVAL,
    "normalize": True,
    "hyperparams": {
        "n_steps": 2048,
        "batch_size": 128,
        "gamma": 0.99,
        "gae_lambda": 0.95,
        "target_kl": 0.01,
        "learning_rate": 1e-3,
        "n_critic_updates": 20,
        "cg_max_steps": 25,
        "cg_damping": 0.1,
        "policy_kwargs": {
            "net_arch": {"pi": [64, 64], "vf": [64, 64]},
            "activation_fn": "relu",
            "log_std_init": -1.0,
            "ortho_init": False,
        },
    },
}

# Ant-v5, PPO: tuned on seeds 100 and 101 (benchmarks/results/locomotion-tune.md, runs/locomotion-confirm: 4,010
# and 3,016 at 1M steps, against 306 at 500k for the classic settings above). What made the difference:
# - the observation without Ant-v5's 78 contact-force columns (include_cfrc_ext_in_observation=false, Ant-v4's
#   27-d observation; the reward is the same): 2,067 without them against 658 with them, all else equal;
# - the learning rate falling linearly to 0 over the run (CleanRL's PPO does so);
# - an initial action std of 0.6 (log_std_init -0.5): 4,010 against 2,067 with std 1 (std 0.37 stood still);
# - four in-process envs of 512 steps: the same 2,048 transitions per update, 1.4x the steps/s of one env.
_PPO_ANT = copy.deepcopy(_PPO_MUJOCO)
_PPO_ANT.update(n_envs=4, env_kwargs={"include_cfrc_ext_in_observation": False})
_PPO_ANT["hyperparams"].update(
    n_steps=512, learning_rate={"schedule": "linear", "start": 3e-4, "end": 0.0},
    policy_kwargs={"net_arch": {"pi": [64, 64], "vf": [64, 64]}, "activation_fn": "tanh", "log_std_init": -0.5},
)

# Ant-v5, TRPO: tuned on seeds 100 and 101 (locomotion-tune.md, locomotion-confirm.md: 4,840 and 3,585 at 1M steps;
# the classic settings above reached 2,244 at 500k over seeds 0-2, locomotion.md). The same two changes as PPO's:
# the observation without the contact forces, and four in-process envs of 512 steps (2,048 transitions per update).
_TRPO_ANT = copy.deepcopy(_TRPO_MUJOCO)
_TRPO_ANT.update(n_envs=4, env_kwargs={"include_cfrc_ext_in_observation": False})
_TRPO_ANT["hyperparams"].update(n_steps=512)

# Humanoid: larger networks and rollouts; its 348-d observation and 17-d action need them.
_PPO_HUMANOID = copy.deepcopy(_PPO_MUJOCO)
_PPO_HUMANOID["hyperparams"].update(
    n_steps=4096, batch_size=256, learning_rate=2.5e-4,
    policy_kwargs={"net_arch": {"pi": [256, 256], "vf": [256, 256]}, "activation_fn": "tanh",
                   "log_std_init": -1.0},
)
# TRPO collects its 4,096 transitions per update from four in-process envs of 1,024 steps, the layout the imitation
# benchmark's Humanoid expert was trained with (6,521 at 3M steps, seed 0: benchmarks/results/imitation.md) and
# 1.4x the steps/s of one env (throughput.md, "Env layout").
_TRPO_HUMANOID = copy.deepcopy(_TRPO_MUJOCO)
_TRPO_HUMANOID["n_envs"] = 4
_TRPO_HUMANOID["hyperparams"].update(
    n_steps=1024, batch_size=256,
    policy_kwargs={"net_arch": {"pi": [256, 256], "vf": [256, 256]}, "activation_fn": "relu",
                   "log_std_init": -1.0, "ortho_init": False},
)

_PPO_SPARSE: dict[str, Any] = {
    "n_envs": 4,
    "normalize": True,
    "hyperparams": {
        "n_steps": 512,
        "batch_size": 256,
        "n_epochs": 10,
        "learning_rate": 3e-4,
        "gamma": 0.99,
        "gae_lambda": 0.95,
        "policy_kwargs": {"net_arch": [64, 64], "activation_fn": "tanh"},
    },
}
_TRPO_SPARSE: dict[str, Any] = {
    "n_envs": 4,
    "normalize": True,
    "hyperparams": {
        "n_steps": 512,
        "batch_size": 256,
        "gamma": 0.99,
        "gae_lambda": 0.95,
        "target_kl": 0.01,
        "policy_kwargs": {"net_arch": [64, 64], "activation_fn": "tanh"},
    },
}

_MUJOCO = ("Ant-v5", "HalfCheetah-v5", "Hopper-v5", "Walker2d-v5")
# The pixel variant of SparseMountainCar takes its state version's settings: its 2x16x24 frames reach the
# 64x64 MLP flattened and scaled to [0, 1] (the run loop leaves image observations unnormalised).
_SPARSE_CLASSIC = ("rlgen/SparseMountainCar-v0", "rlgen/SparseCartPoleSwingup-v0", "rlgen/SparseMountainCarPixels-v0",
                   "rlgen/SparseMountainCar-v1", "rlgen/SparseCartPoleSwingup-v1")
_SPARSE_MUJOCO = ("rlgen/SparseHalfCheetah-v0", "rlgen/SparseAnt-v0", "rlgen/SparseHalfCheetah-v1")

# The third-party sparse tasks (rlgen.envs.suites) take the sparse classic-control layout, 4 envs x 512 steps
# with 64x64 tanh networks, evaluated at the MuJoCo tasks' pace: their episodes run 300-1,000 steps, and
# 5 episodes every 10k steps (the default) would spend up to half as many steps evaluating as training.
_SUITE_TASKS = tuple(task.id for task in SUITE_TASKS)

PRESETS: dict[tuple[str, str], dict[str, Any]] = {}
for _env in _MUJOCO:
    PRESETS["ppo", _env] = _PPO_MUJOCO
    PRESETS["trpo", _env] = _TRPO_MUJOCO
PRESETS["ppo", "Ant-v5"] = _PPO_ANT
PRESETS["trpo", "Ant-v5"] = _TRPO_ANT
PRESETS["ppo", "Humanoid-v5"] = _PPO_HUMANOID
PRESETS["trpo", "Humanoid-v5"] = _TRPO_HUMANOID
PRESETS["ppo", "rlgen/SparseHumanoid-v0"] = _PPO_HUMANOID
PRESETS["trpo", "rlgen/SparseHumanoid-v0"] = _TRPO_HUMANOID
for _env in _SPARSE_CLASSIC:
    PRESETS["ppo", _env] = _PPO_SPARSE
    PRESETS["trpo", _env] = _TRPO_SPARSE
for _env in _SPARSE_MUJOCO:
    PRESETS["ppo", _env] = _PPO_MUJOCO
    PRESETS["trpo", _env] = _TRPO_MUJOCO
for _env in _SUITE_TASKS:
    PRESETS["ppo", _env] = {**_PPO_SPARSE, **_MUJOCO_EVAL}
    PRESETS["trpo", _env] = {**_TRPO_SPARSE, **_MUJOCO_EVAL}


def preset_for(algo: str, env_id: str) -> dict[str, Any]:
    """The preset's RunConfig fields for (algo, env_id), or {} when there is none (SB3 defaults)."""
    return copy.deepcopy(PRESETS.get((algo, env_id), {}))
