"""benchmarks/bonus_scale.py: each bonus per step beside the env reward per step as VecNormalize scaled it."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from rlgen.bench import load_suite

ROOT = Path(__file__).parent.parent
spec = importlib.util.spec_from_file_location("bonus_scale", ROOT / "benchmarks" / "bonus_scale.py")
bonus_scale = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bonus_scale)


def test_the_late_bonus_is_set_beside_the_late_env_reward_in_vecnormalizes_units(tmp_path):
    suite_file = tmp_path / "suite.yaml"
    suite_file.write_text(yaml.safe_dump({"name": "scale-test", "seeds": 1, "runs": [
        {"algo": "ppo", "env_id": "Pendulum-v1", "label": "ppo+vime", "bonus": "vime", "total_steps": 1000}]}))
    (run,) = load_suite(suite_file).runs(tmp_path / "out")
    folder = run.config.run_dir
    (folder / "monitor").mkdir(parents=True)
    run.config.save(folder / "config.yaml")
    (folder / "result.json").write_text(json.dumps({"timesteps": 1000, "wall_time": 1.0}))
    # two envs, five episodes of 100 steps each: the last 20% of training (suite steps after 800, each env's
    # after 400) holds each env's last episode, 50 and 100 in 200 steps
    for env, last in ((0, 50), (1, 100)):
        (folder / "monitor" / f"{env}.monitor.csv").write_text(
            '#{"t_start": 0}\nr,l,t\n' + "".join(f"{r},100,{i}\n" for i, r in enumerate([0, 0, 0, 7, last])))
    np.savez(folder / "vecnormalize.npz", ret_var=np.array(100.0 - 1e-8), ret_mean=np.array(0.0),
             epsilon=np.array(1e-8), clip_reward=np.array(10.0), norm_reward=np.array(True))
    (folder / "vime_log.jsonl").write_text("".join(
        json.dumps({"timesteps": t, "vime/bonus_mean": b}) + "\n" for t, b in [(400, 1.0), (800, 1.0), (1000, 0.1)]))
    scale = bonus_scale.run_scale(folder, 1000, 0.2)
    assert scale == pytest.approx({"bonus": 0.1, "reward": 0.75 * 0.1, "unit": 0.1})
    # the first 40% instead (suite steps up to 400, each env's up to 200): two empty episodes per env, and the
    # rollout that ended at 400
    early = bonus_scale.run_scale(folder, 1000, 0.2, first=0.4)
    assert early == pytest.approx({"bonus": 1.0, "reward": 0.0, "unit": 0.1})
    assert "over the first 40% of training" in bonus_scale.report(tmp_path / "out", str(suite_file), 0.2, "c", 0.4)
    text = bonus_scale.report(tmp_path / "out", str(suite_file), 0.2, "cmd")
    assert "| Pendulum-v1 | ppo+vime | 1 | 0.1 | 0.075 | 0.1 | 1.33 | 1.33-1.33 (1) |" in text
    assert "the bonus per step over the last" in text  # the method, not the usage line
    # a return so rare that one unit of reward scales past VecNormalize's clip: it was clipped to 10
    np.savez(folder / "vecnormalize.npz", ret_var=np.array(1e-4), ret_mean=np.array(0.0), epsilon=np.array(1e-8),
             clip_reward=np.array(10.0), norm_reward=np.array(True))
    assert bonus_scale.run_scale(folder, 1000, 0.2)["unit"] == 10.0
    with pytest.raises(SystemExit, match="no finished run with a bonus log"):
        bonus_scale.report(tmp_path / "elsewhere", str(suite_file), 0.2, "cmd")
