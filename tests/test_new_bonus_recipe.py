"""README's recipe for a new exploration bonus ("Changing rlgen"), followed to the letter: a forward-model
surprise bonus in ~30 lines trains through the run loop, logs, saves and resumes with nothing else changed."""

import json
from typing import Any

import numpy as np
import torch

from rlgen.exploration.rollout_bonus import ModelBonus


class Surprise(ModelBonus):
    """beta x the squared error of a linear forward model s' ~ [s, a] (standardised by the pool)."""

    state_name, state_file, log_prefix = "Surprise", "surprise.pt", "surprise"

    def __init__(self, venv, *, beta: float = 0.1, model_steps: int = 20, seed: int = 0, **kwargs: Any):
        super().__init__(venv, replay_size=10_000, min_replay=1, model_steps=model_steps, batch_size=32, seed=seed,
                         clip=5.0, **kwargs)
        self.beta = beta
        with self.seeded():
            self.model = torch.nn.Linear(self.obs_dim + self.act_dim, self.obs_dim)
        self.set_model(self.model, 1e-2)

    def compute_bonus(self, inputs, targets, record=True):
        if self.stats is None:
            return np.zeros(len(inputs)), {}
        with torch.no_grad():
            error = (self.model(self.standardise_inputs(inputs)) - self.standardise_targets(targets)).square()
        bonus = self.beta * error.mean(1).numpy().astype(np.float64)
        return bonus, {"surprise/bonus_mean": float(bonus.mean())}

    def update_model(self, inputs, targets):
        self.pool.add_inputs(inputs, targets)
        self.stats = self.pool_statistics()

        def objective(x, y):
            return (self.model(self.standardise_inputs(x)) - self.standardise_targets(y)).square().mean()

        return {"surprise/loss": self.fit(objective, self.steps_for(len(inputs)))}

    def state_dict(self):
        return {"model": self.model.state_dict(), **self.pool_state(), **self.recording_state()}

    def load_state_dict(self, state):
        self.model.load_state_dict(state["model"])
        self.load_pool_state(state)
        self.load_recording_state(state)


def test_a_bonus_made_by_the_readmes_recipe_trains_logs_and_resumes(tmp_path, monkeypatch):
    import rlgen.agents.config as config_module
    import rlgen.exploration as exploration
    from rlgen.agents import RunConfig, train

    monkeypatch.setitem(exploration.BONUS_WRAPPERS, "surprise", Surprise)
    monkeypatch.setattr(config_module, "BONUSES", (*config_module.BONUSES, "surprise"))
    config = RunConfig(algo="a2c", env_id="rlgen/SparseMountainCar-v0", total_steps=1024, n_envs=2, bonus="surprise",
                       bonus_kwargs={"beta": 0.5, "update_every": 256}, hyperparams={"n_steps": 8},
                       eval_freq=0, checkpoint_freq=512, progress_bar=False, out_dir=str(tmp_path))
    result = train(config)
    state = torch.load(result.run_dir / "surprise.pt", weights_only=True)
    assert state["pool"]["obs"].shape[0] == 1024  # four windows of 256 transitions learnt from
    rows = [json.loads(line) for line in (result.run_dir / "surprise_log.jsonl").read_text().splitlines()]
    assert rows and all(row["surprise/bonus_mean"] >= 0 for row in rows)
    assert rows[-1]["surprise/bonus_mean"] > 0 and any("surprise/loss" in row for row in rows)
    config.total_steps = 1536
    assert train(config, resume=True).timesteps == 1536
    # the pool came back from the checkpoint and grew by the new window (a lost state would leave 512 rows)
    assert torch.load(result.run_dir / "surprise.pt", weights_only=True)["pool"]["obs"].shape[0] == 1536
