"""SB3 algorithms, presets and the run loop: config -> env stack -> learn -> run directory.

Modules: ``config`` (RunConfig, presets' resolution), ``presets``, ``rundir`` (the run directory's layout and
identity), ``envstack`` (envs, reward wrappers, normalisation, the model), ``run`` (the training loop),
``evaluation`` (evaluate, collect demos), ``checkpoint`` (saving), ``plotting``.
"""

from rlgen.agents.config import ALGOS, ConfigError, RunConfig, apply_overrides
from rlgen.agents.evaluation import collect_demos, eval_seed, evaluate, load_run
from rlgen.agents.presets import PRESETS, preset_for
from rlgen.agents.run import RunResult, train, train_bc
from rlgen.agents.rundir import RunDir

__all__ = [
    "ALGOS", "PRESETS", "ConfigError", "RunConfig", "RunDir", "RunResult",
    "apply_overrides", "collect_demos", "eval_seed", "evaluate", "load_run", "preset_for", "train", "train_bc",
]
