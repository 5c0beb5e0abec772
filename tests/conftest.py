import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MUJOCO_GL", "egl")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture
def tiny_config(tmp_path):
    """A PPO run on CartPole that finishes in a second or two."""
    from rlgen.agents import RunConfig

    def make(**fields):
        base = dict(
            algo="ppo", env_id="CartPole-v1", total_steps=512, n_envs=1, seed=0, out_dir=str(tmp_path / "runs"),
            hyperparams={"n_steps": 128, "batch_size": 64, "n_epochs": 2, "policy_kwargs": {"net_arch": [16]}},
            eval_freq=256, eval_episodes=2, checkpoint_freq=256, progress_bar=False,
        )
        base.update(fields)
        return RunConfig(**base).validated()

    return make
