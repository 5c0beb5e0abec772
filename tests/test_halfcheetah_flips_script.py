"""benchmarks/halfcheetah_flips.py reads the torso angle, velocity and x from the right observation columns."""

import numpy as np

from rlgen.imitation.demos import Trajectories, Trajectory, save_demos
from tests.benchmark_scripts import run


def _episode(dim, angle, velocity, x=None, steps=10):
    obs = np.zeros((steps + 1, dim), np.float32)
    shift = dim == 18
    obs[:, 1 + shift] = angle
    obs[:, 8 + shift] = velocity
    if x is not None:
        obs[:, 0] = x
    return Trajectory(obs, np.zeros((steps, 6), np.float32), np.ones(steps, np.float32))


def test_flips_velocity_and_goal_step_come_from_each_layouts_columns(tmp_path):
    plain = tmp_path / "plain.npz"  # HalfCheetah-v5's 17-d observations: one flipped episode, one upright
    save_demos(plain, Trajectories.from_episodes([_episode(17, 3.0, -0.5), _episode(17, 0.1, 2.0)],
                                                 "HalfCheetah-v5"))
    sparse = tmp_path / "sparse.npz"  # with x first: the torso passes x = 5 at step 6
    x = np.linspace(0.0, 10.0, 11)
    save_demos(sparse, Trajectories.from_episodes([_episode(18, -2.0, 1.5, x)], "rlgen/SparseHalfCheetah-v0"))
    done = run("halfcheetah_flips", plain, sparse)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "flipped 1.00 of its steps  mean forward velocity -0.50" in lines[1]
    assert "flipped 0.00 of its steps  mean forward velocity +2.00" in lines[2]
    assert "1 of 2 episodes flipped" in lines[3]
    assert "flipped 1.00 of its steps  mean forward velocity +1.50  first past x 5 at step 6" in lines[5]


def test_other_envs_demos_are_refused_in_one_line(tmp_path):
    path = tmp_path / "hopper.npz"
    save_demos(path, Trajectories.from_episodes([_episode(11, 0.0, 0.0)], "Hopper-v5"))
    done = run("halfcheetah_flips", path)
    assert done.returncode != 0
    assert "holds Hopper-v5 demos with observations (11,)" in done.stderr.strip().splitlines()[-1]
