"""SB3 algorithms, presets and the run loop: config -> env stack -> learn -> run directory."""

from rlgen.agents.config import ALGOS, ConfigError, RunConfig, apply_overrides
from rlgen.agents.presets import PRESETS, preset_for
from rlgen.agents.run import RunResult, collect_demos, evaluate, load_run, train, train_bc

__all__ = [
    "ALGOS", "PRESETS", "ConfigError", "RunConfig", "RunResult",
    "apply_overrides", "collect_demos", "evaluate", "load_run", "preset_for", "train", "train_bc",
]
