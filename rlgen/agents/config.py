"""Run configuration: one dataclass, saved and read as YAML, with presets and ``key=value`` overrides."""

from __future__ import annotations

import copy
import dataclasses
import difflib
import importlib
import inspect
import math
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from rlgen.deprecation import renamed_keys

ALGOS = ("ppo", "trpo", "a2c", "sac")
VEC_ENVS = ("dummy", "subproc")
BONUSES: tuple[str | None, ...] = (None, "vime", "density", "rnd")
IMITATIONS: tuple[str | None, ...] = (None, "gail", "infogail", "bc")
ON_POLICY = ("ppo", "trpo", "a2c")


_RENAMED_KWARGS = {
    "imitation_kwargs": {"lr": "learning_rate", "q_lr": "q_learning_rate", "update_every": "disc_transitions",
                         "disc_updates": "disc_steps"},
    "bc_kwargs": {"lr": "learning_rate"},
    "bonus_kwargs": {"updates_per_rollout": "model_steps"},
}
"""Keywords of the wrappers and of behaviour cloning that were renamed: a config with the old name still loads."""


MAX_TOTAL_STEPS = 10**10
"""A budget past this is a typo (1e20 for 1e6), not a plan: ~116 days at 1,000 steps/s."""

MAX_SEED = 2**32 - 1
"""The largest seed numpy's global generator takes, which SB3 seeds (``set_random_seed``)."""


class ConfigError(ValueError):
    """A configuration problem a user can fix; the CLI prints it on one line and exits with code 2."""


def algo_class(algo: str) -> type:
    """The SB3 class for ``algo`` (imported lazily: sb3-contrib is only needed for TRPO)."""
    if algo == "ppo":
        from stable_baselines3 import PPO

        return PPO
    if algo == "a2c":
        from stable_baselines3 import A2C

        return A2C
    if algo == "sac":
        from stable_baselines3 import SAC

        return SAC
    if algo == "trpo":
        from sb3_contrib import TRPO

        return TRPO
    raise ConfigError(f"unknown algorithm {algo!r}; choose one of: {', '.join(ALGOS)}")


@dataclass
class RunConfig:
    """Everything that defines one training run. ``hyperparams`` go to the SB3 constructor."""

    algo: str = "ppo"
    """SB3 algorithm: ppo, trpo, a2c or sac."""
    env_id: str = "rlgen/SparseMountainCar-v0"
    """Gymnasium id; rlgen's tasks are ``rlgen/<Name>-v0``."""
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments for ``gym.make``."""
    total_steps: int = 100_000
    """Environment steps to train for (summed over the vectorised envs)."""
    n_envs: int = 1
    """Number of environments stepped together."""
    vec_env: str = "dummy"
    """dummy (in-process; the fast choice on a 2-core machine) or subproc."""
    seed: int = 0
    """One config and one seed give one result."""
    hyperparams: dict[str, Any] = field(default_factory=dict)
    """SB3 constructor arguments, e.g. n_steps, learning_rate, policy_kwargs: {net_arch: [64, 64]}; learning_rate
    and clip_range also take {schedule: linear, start: 3e-4, end: 0} (falling over the run's budget)."""
    normalize: bool = True
    """Wrap the env stack in VecNormalize (observations, except image ones, and rewards)."""
    norm_reward: bool = True
    """With ``normalize``: also normalise the reward the agent learns from."""
    env_reward_weight: float = 1.0
    """Weight of the env's reward in what the agent learns from; 0 = pure exploration (with a bonus, the agent
    learns from the bonus alone). Monitor files, eval.csv, success rates and SB3's ep_rew_mean still report the
    env's own reward."""
    bonus: str | None = None
    """Exploration bonus wrapper: vime, density or rnd (or none)."""
    bonus_kwargs: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments of the bonus wrapper, e.g. {eta: 0.1} for rlgen.exploration.VIME, {model: pixelcnn,
    target: state, beta: 0.05} for rlgen.exploration.DensityBonus."""
    imitation: str | None = None
    """Learn from ``demos`` instead of the env reward: gail (the GAIL reward wrapper), infogail (GAIL with a
    latent code, rlgen.imitation.InfoGAIL; needs imitation_kwargs.n_modes) or bc (behaviour cloning alone:
    no env steps, ``total_steps`` unused)."""
    demos: str | None = None
    """Demonstrations file (.npz from ``rlgen demos collect``) for imitation and bc_pretrain."""
    demo_episodes: int | None = None
    """Use only the first this many episodes of ``demos`` (none: all)."""
    demo_subsample: int = 1
    """Keep every k-th (s, a) pair of each demo episode (the GAIL paper: 20)."""
    imitation_kwargs: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments of rlgen.imitation.GAIL, e.g. {disc_steps: 1, disc_transitions: 2048, reward: log_d,
    absorbing: true, learning_rate: 0.01}, or of rlgen.imitation.InfoGAIL, e.g. {n_modes: 2, lambda_info: 1.0}."""
    bc_pretrain: bool = False
    """Behaviour-clone the policy on ``demos`` before training (a fresh run only). With ``imitation: infogail``
    each demo observation gets a uniformly drawn code, as the original pre-trained its policy: the clone starts
    out ignoring its code."""
    bc_kwargs: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments of rlgen.imitation.behaviour_cloning, e.g. {gradient_steps: 5000, loss: mse,
    learning_rate: 1e-3}."""
    eval_freq: int = 10_000
    """Evaluate every this many steps (0: only at the end)."""
    eval_episodes: int = 5
    """Episodes per evaluation."""
    checkpoint_freq: int = 50_000
    """Save a resumable checkpoint every this many steps (0: only at the end)."""
    out_dir: str = "runs"
    """Parent folder of run directories."""
    run_name: str | None = None
    """Run directory name; default ``<algo>[-<imitation>][-<bonus>]_<env>_s<seed>``."""
    torch_threads: int = 1
    """One thread is as fast as two for these networks and keeps seeded runs exact."""
    progress_bar: bool = True
    """Show SB3's progress bar."""

    # -- derived -------------------------------------------------------------------------------
    @property
    def run_dir(self) -> Path:
        name = self.run_name or default_run_name(self.algo, self.env_id, self.seed, self.bonus, self.imitation)
        return Path(self.out_dir) / name

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def save(self, path: str | Path) -> None:
        from rlgen.atomic import atomic_write_text

        atomic_write_text(path, dump_yaml(self.to_dict()))

    @classmethod
    def from_dict(cls, data: dict[str, Any], validate: bool = True) -> RunConfig:
        """A config from its fields; ``validate=False`` leaves the checks for later (a config still to be
        completed by overrides, e.g. ``-p bonus_kwargs.mode=step`` that makes a bonus valid for SAC)."""
        unknown = sorted(set(data) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            algo = data.get("algo") or cls.algo
            hint = (f" (a {algo} hyperparameter: put it under hyperparams:)"
                    if algo in ALGOS and unknown[0] in sb3_arguments(algo) else "")
            if hint:
                raise ConfigError(f"unknown config key {unknown[0]!r}{hint}")
            close = difflib.get_close_matches(unknown[0], field_names(), n=1)
            keys = f"did you mean {close[0]!r}?" if close else f"valid keys: {', '.join(field_names())}"
            raise ConfigError(f"unknown config key {unknown[0]!r}; {keys}")
        data = dict(data)
        for name, renames in _RENAMED_KWARGS.items():  # configs written before a keyword was renamed
            if isinstance(data.get(name), dict):
                try:
                    data[name] = renamed_keys(data[name], renames, name)
                except ValueError as exc:
                    raise ConfigError(str(exc)) from None
        config = cls(**data)
        return config.validated() if validate else config

    @classmethod
    def load(cls, path: str | Path, validate: bool = True) -> RunConfig:
        return cls.from_dict(read_yaml_mapping(path, "config file"), validate=validate)

    def validated(self) -> RunConfig:
        """Check every field a user can get wrong; raise ConfigError naming the problem."""
        if self.algo not in ALGOS:
            raise ConfigError(f"unknown algorithm {self.algo!r}; choose one of: {', '.join(ALGOS)}")
        check_env_id(self.env_id)
        if self.vec_env not in VEC_ENVS:
            raise ConfigError(f"unknown vec_env {self.vec_env!r}; choose one of: {', '.join(VEC_ENVS)}")
        if self.bonus not in BONUSES:
            choices = ", ".join(str(b) for b in BONUSES if b is not None)
            raise ConfigError(f"unknown bonus {self.bonus!r}; choices: {choices}")
        if self.bonus is not None and self.algo not in ON_POLICY and self.bonus_kwargs.get("mode") != "step":
            raise ConfigError(f"the {self.bonus} bonus rewrites rollouts, which {self.algo} has not: add "
                              f"bonus_kwargs.mode=step (the bonus at step time, slower) or use ppo, trpo or a2c")
        self._validate_imitation()
        self.check_values()
        valid = sb3_arguments(self.algo)
        for key in self.hyperparams:
            if key not in valid:
                raise ConfigError(
                    f"unknown {self.algo} hyperparameter {key!r}; valid: {', '.join(sorted(valid))}"
                )
        _check_hyperparam_types(self.algo, self.hyperparams)
        return self

    def check_values(self) -> RunConfig:
        """Check each field whose value is right or wrong on its own, whatever the others hold (types and ranges;
        1e6 is made the whole number it is, a number given as run_name text): the part of :meth:`validated` a
        config file is held to before flags and overrides complete it."""
        weight = self.env_reward_weight
        if isinstance(weight, bool) or not isinstance(weight, int | float) or not math.isfinite(weight):
            raise ConfigError(f"env_reward_weight must be a finite number, got {weight!r}")
        for name in ("total_steps", "n_envs", "eval_episodes", "torch_threads", "eval_freq", "checkpoint_freq",
                     "seed"):
            value = getattr(self, name)
            if isinstance(value, float) and value.is_integer():  # 1e6 in a file or -p: a whole number
                setattr(self, name, int(value))
        for name in ("out_dir", "run_name"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):  # -p run_name=2024 reads as a number
                setattr(self, name, str(value))
        for name in ("normalize", "norm_reward", "progress_bar"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be true or false, got {getattr(self, name)!r}")
        for name in ("total_steps", "n_envs", "eval_episodes", "torch_threads"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        if self.total_steps > MAX_TOTAL_STEPS:
            raise ConfigError(f"total_steps {self.total_steps:.3g} is beyond what one run trains (at most "
                              f"{MAX_TOTAL_STEPS:.0e}, ~{MAX_TOTAL_STEPS / 1000 / 86400:.0f} days at 1,000 steps/s)")
        for name in ("eval_freq", "checkpoint_freq", "seed"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ConfigError(f"{name} must be a non-negative integer, got {value!r}")
        if self.seed > MAX_SEED:
            raise ConfigError(f"seed {self.seed} is past 2**32 - 1 = {MAX_SEED}, the largest numpy's generator takes "
                              f"(SB3 seeds it): give a smaller seed")
        for name in ("env_kwargs", "hyperparams", "bonus_kwargs", "imitation_kwargs", "bc_kwargs"):
            if not isinstance(getattr(self, name), dict):
                raise ConfigError(f"{name} must be a mapping, got {getattr(self, name)!r}")
        return self

    def refuse_unused_settings(self) -> RunConfig:
        """ConfigError if a wrapper's settings come without the wrapper (``-p bonus_kwargs.eta=0.1`` and no bonus
        trains plain PPO) or name no setting of the wrapper (``bonus_kwargs.etaa``): they would be ignored without
        a word, or stop the run only once its env is built. Checked on new runs only, so a run saved before the
        check still resumes and evaluates."""
        if self.imitation == "bc" and (self.bonus is not None or self.bc_pretrain):
            what = f"bonus {self.bonus}" if self.bonus is not None else "bc_pretrain"
            raise ConfigError(f"{what} would be ignored: imitation bc is behaviour cloning alone (no env steps)")
        users = (
            ("bonus_kwargs", self.bonus is not None, "no bonus is chosen (--bonus vime, density or rnd; config key "
                                                     "bonus)"),
            ("imitation_kwargs", self.imitation in ("gail", "infogail"),
             "they are GAIL's and InfoGAIL's settings, and imitation is "
             + (repr(self.imitation) if self.imitation else "not set")),
            ("bc_kwargs", self.bc_pretrain or self.imitation == "bc",
             "no behaviour cloning is asked for (imitation bc, or bc_pretrain: true)"),
        )
        for name, used, why in users:
            settings = getattr(self, name)
            if settings and not used:
                keys = ", ".join(f"{name}.{key}" for key in settings)
                raise ConfigError(f"{keys} would be ignored: {why}")
        from rlgen.agents.envstack import wrapper_specs
        from rlgen.reward_wrapper import setting_type_error

        for spec in wrapper_specs(self):
            known = spec.cls.setting_names()
            for key in spec.settings if known is not None else ():
                if key not in known:
                    renames = _RENAMED_KWARGS.get(spec.settings_key, {})  # an old name is suggested as its new one
                    close = [renames.get(name, name) for name in difflib.get_close_matches(key, sorted(known), n=1)]
                    current = ", ".join(sorted(known - set(renames)))
                    hint = f"did you mean {spec.settings_key}.{close[0]}?" if close else f"valid: {current}"
                    raise ConfigError(f"{spec.settings_key}.{key} is no setting of {spec.cls.__name__} "
                                      f"({spec.option}); {hint}")
            params = spec.cls.setting_parameters()
            for key, value in spec.settings.items():
                problem = setting_type_error(f"{spec.settings_key}.{key}", value, params.get(key), spec.cls.__name__)
                if problem is not None:
                    raise ConfigError(problem)
        return self

    def _validate_imitation(self) -> None:
        if self.imitation not in IMITATIONS:
            choices = ", ".join(str(m) for m in IMITATIONS if m is not None)
            raise ConfigError(f"unknown imitation {self.imitation!r}; choices: {choices}")
        needs_demos = self.imitation is not None or self.bc_pretrain
        if needs_demos and not self.demos:
            what = f"imitation {self.imitation}" if self.imitation else "bc_pretrain"
            raise ConfigError(f"{what} needs a demonstrations file: set demos (rlgen demos collect makes one)")
        if (self.imitation == "bc" or self.bc_pretrain) and self.algo not in ON_POLICY:
            raise ConfigError(f"behaviour cloning trains an on-policy agent's policy (ppo, trpo, a2c), not {self.algo}")
        if not isinstance(self.bc_pretrain, bool):
            raise ConfigError(f"bc_pretrain must be true or false, got {self.bc_pretrain!r}")
        if self.imitation == "infogail":
            n_modes = self.imitation_kwargs.get("n_modes") if isinstance(self.imitation_kwargs, dict) else None
            if not isinstance(n_modes, int) or isinstance(n_modes, bool) or n_modes < 2:
                raise ConfigError(f"imitation infogail needs imitation_kwargs.n_modes, the number of behaviours "
                                  f"(an integer >= 2; --n-modes K), got {n_modes!r}")
        value = self.demo_subsample
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"demo_subsample must be a positive integer, got {value!r}")
        value = self.demo_episodes
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise ConfigError(f"demo_episodes must be a positive integer or null, got {value!r}")


class _Yaml12Floats(yaml.SafeLoader):
    """PyYAML's safe loader, but reading unquoted numbers such as 1e6 and 3e-4 as numbers (YAML 1.2), not as the
    strings YAML 1.1 makes of them."""


class _Yaml12FloatsDumper(yaml.SafeDumper):
    """The safe dumper that quotes any text :class:`_Yaml12Floats` would read as a number (a run named 1e5)."""


_FLOAT_12 = re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                   |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                   |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
                   |[-+]?\.(?:inf|Inf|INF)
                   |\.(?:nan|NaN|NAN))$""", re.X)
for _cls in (_Yaml12Floats, _Yaml12FloatsDumper):
    _cls.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT_12, list("-+0123456789."))


def dump_yaml(data: Any) -> str:
    """YAML that :func:`load_yaml` reads back as the same values."""
    return yaml.dump(data, Dumper=_Yaml12FloatsDumper, sort_keys=False)


def load_yaml(text: str) -> Any:
    """YAML as rlgen reads its config files: safe (no object construction), numbers in e-notation as numbers."""
    return yaml.load(text, Loader=_Yaml12Floats)  # noqa: S506 - a SafeLoader subclass


def read_yaml_mapping(path: str | Path, what: str) -> dict[str, Any]:
    """A YAML file holding a mapping; ConfigError (one line) when it is missing, malformed or not a mapping."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{what} not found: {path}")
    try:
        data = load_yaml(path.read_text())
    except (yaml.YAMLError, ValueError) as exc:
        raise ConfigError(f"{what} {path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if data is None:  # no text, or comments only
        raise ConfigError(f"{what} {path} is empty: it must hold a mapping of keys (key: value, one a line)")
    if not isinstance(data, dict):
        raise ConfigError(f"{what} {path} must hold a mapping of keys, got {type(data).__name__}")
    return data


def default_run_name(algo: str, env_id: str, seed: int, bonus: str | None = None,
                     imitation: str | None = None) -> str:
    slug = env_id.replace("/", "-").replace(":", "-")  # module:Env-v0 (a user's env) -> module-Env-v0
    method = "-".join(part for part in (algo, imitation, bonus) if part)
    return f"{method}_{slug}_s{seed}"


def is_folder_name(name: str) -> bool:
    """Whether a run_name names one folder: the run goes to out_dir/run_name, which '..' or a '/' would put
    elsewhere and '.' into out_dir itself ('' is no name either, not the default one)."""
    return name not in ("", ".", "..") and "/" not in name and "\\" not in name


def field_names() -> list[str]:
    return [f.name for f in dataclasses.fields(RunConfig)]


# Arguments rlgen sets itself from RunConfig fields; a user sets them through those fields.
_MANAGED = {"policy", "env", "seed", "tensorboard_log", "verbose", "device", "_init_setup_model"}


def sb3_arguments(algo: str) -> set[str]:
    """Constructor arguments of the SB3 class that a config may set in ``hyperparams``."""
    params = inspect.signature(algo_class(algo).__init__).parameters
    return {name for name in params if name not in _MANAGED and name != "self"}


def _check_hyperparam_types(algo: str, hyperparams: dict[str, Any]) -> None:
    """ConfigError naming the key for a hyperparameter whose value is clearly of the wrong type for SB3's
    argument: text (or true/false) where its default is a number, text where it is true or false. Anything else
    is left to SB3 (a number's range, train_freq's [1, episode], a schedule)."""
    defaults = {name: param.default for name, param in
                inspect.signature(algo_class(algo).__init__).parameters.items()}
    for key, value in hyperparams.items():
        default = defaults.get(key)
        if isinstance(default, bool):
            if isinstance(value, str):
                raise ConfigError(f"{algo} hyperparameter {key} must be true or false (default {str(default).lower()}), "
                                  f"got {value!r}")
        elif isinstance(default, int | float) and isinstance(value, str | bool):
            raise ConfigError(f"{algo} hyperparameter {key} must be a number (default {default}), got {value!r}")


def check_env_id(env_id: str) -> None:
    """ConfigError unless ``env_id`` is registered with Gymnasium. An id of a third-party suite
    (``dm_control/*``, ``PointMaze_*``, ``AntMaze_*``) first has its package imported, which registers it;
    when that package is missing the error names the extra that installs it. Gymnasium's ``module:EnvId``
    (a user's own env, registered when ``module`` is imported, as ``gym.make`` does) imports the module first."""
    import gymnasium as gym

    import rlgen.envs  # noqa: F401  (registers rlgen/* ids)
    from rlgen.envs.suites import SuiteNotInstalled, ensure_registered

    if ":" in env_id:  # Gymnasium's "module:EnvId": gym.make imports the module, which registers the id
        module, _, env_id = env_id.partition(":")
        try:
            importlib.import_module(module)
        except Exception as exc:  # ImportError, or the module's own failure: one line
            raise ConfigError(f"env id {module}:{env_id}: importing {module!r} failed ({type(exc).__name__}: "
                              f"{(str(exc).splitlines() or [''])[0]}); is it on PYTHONPATH?") from None
    try:
        ensure_registered(env_id)
    except SuiteNotInstalled as exc:
        raise ConfigError(str(exc)) from None
    if env_id in gym.registry:
        return
    close = difflib.get_close_matches(env_id, list(gym.registry), n=4, cutoff=0.6)
    namespace = env_id.split("/", 1)[0] if "/" in env_id else None
    if not close and namespace is not None and not any(name.startswith(f"{namespace}/") for name in gym.registry):
        raise ConfigError(f"unknown env id {env_id!r}: no env of the namespace {namespace!r} is registered (the "
                          f"package that registers them is not installed, or not imported); see `rlgen envs` for "
                          f"the suites rlgen knows")
    hint = f"did you mean: {', '.join(close)}" if close else "see `rlgen envs` for rlgen's tasks"
    raise ConfigError(f"unknown env id {env_id!r}; {hint}")


def parse_override(item: str) -> tuple[list[str], Any]:
    """``key=value`` -> (["key"], value); dotted keys reach into mappings; values are YAML."""
    if "=" not in item:
        raise ConfigError(f"override {item!r} is not of the form key=value")
    key, raw = item.split("=", 1)
    if key.strip() in ("run_name", "out_dir"):  # names, taken as typed (2024.10 and 007 stay as they are)
        value: Any = raw
    else:
        try:
            value = yaml.safe_load(raw) if raw != "" else ""
        except yaml.YAMLError as exc:  # an unclosed [64, would reach SB3 as text and fail there, unnamed
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise ConfigError(f"-p {key.strip()}: {raw!r} is not valid YAML ({problem}); close its brackets, or "
                              f"quote text: -p '{key.strip()}=\"...\"'") from None
        if isinstance(value, str):
            value = _number_or_text(value)  # YAML 1.1 reads "1e6" and "3e-4" as strings
    path = [part for part in key.strip().split(".") if part]
    if not path:
        raise ConfigError(f"override {item!r} has an empty key")
    return path, value


def _number_or_text(text: str) -> Any:
    try:
        number = float(text)
    except ValueError:
        return text
    return int(number) if number.is_integer() and "." not in text and "e-" not in text.lower() else number


def apply_overrides(config: RunConfig, overrides: list[str]) -> RunConfig:
    """Apply ``-p key=value`` overrides. A key is a RunConfig field, or else an SB3 hyperparameter
    (``-p learning_rate=1e-4``, ``-p policy_kwargs.net_arch=[32,32]``), or ``env_kwargs.NAME``."""
    data = config.to_dict()
    fields = set(field_names())
    for item in overrides:
        path, value = parse_override(item)
        if path[0] not in fields:
            valid = sb3_arguments(data["algo"]) if data["algo"] in ALGOS else set()
            if path[0] not in valid:
                close = difflib.get_close_matches(path[0], sorted(fields | valid), n=1)
                hint = (f"did you mean {'.'.join([close[0], *path[1:]])}?" if close else
                        f"valid: config keys ({', '.join(sorted(fields))}) or {data['algo']} hyperparameters "
                        f"({', '.join(sorted(valid))})")
                raise ConfigError(f"unknown key {path[0]!r} in -p {item}; {hint}")
            path = ["hyperparams", *path]
        target = data
        for part in path[:-1]:
            nxt = target.get(part)
            if nxt is None:
                nxt = target[part] = {}
            if not isinstance(nxt, dict):
                raise ConfigError(f"cannot set {'.'.join(path)}: {part!r} is not a mapping")
            target = nxt
        target[path[-1]] = value
    return RunConfig.from_dict(data)


def scheduled_settings(hyperparams: dict[str, Any]) -> list[str]:
    """The hyperparameters given as a schedule over the run's budget ({schedule: linear, ...})."""
    return [key for key, value in hyperparams.items() if isinstance(value, dict) and "schedule" in value]


def resume_config(run_dir: str | Path, total_steps: int | None = None, overrides: list[str] | None = None
                  ) -> RunConfig:
    """The config of the run in ``run_dir``, to resume it (``total_steps`` raises its budget)."""
    run_dir = Path(run_dir).resolve()  # `--resume .` names the folder, whose name '.' does not say
    if not (run_dir / "config.yaml").is_file():
        raise ConfigError(f"{run_dir} is not a run directory (no config.yaml)")
    config = RunConfig.load(run_dir / "config.yaml")
    # the run keeps its directory wherever it has been moved to
    config.out_dir, config.run_name = str(run_dir.parent), run_dir.name
    if total_steps:
        if total_steps < config.total_steps and config.imitation != "bc":  # cloning has no env-step budget
            raise ConfigError(f"--steps {total_steps:,} is below the run's budget of {config.total_steps:,} env "
                              "steps: a resume can only raise it")
        scheduled = scheduled_settings(config.hyperparams)
        if total_steps > config.total_steps and scheduled:
            verb = "follows" if len(scheduled) == 1 else "follow"
            warnings.warn(f"{', '.join(scheduled)} {verb} a schedule laid over the run's {config.total_steps:,} env "
                          f"steps; from here SB3 lays it over {total_steps:,}, so the values jump and the resumed run "
                          f"differs from a fresh run of {total_steps:,} steps", stacklevel=2)
        config.total_steps = total_steps
    return apply_overrides(config, overrides or [])


def build_config(
    algo: str | None = None,
    env_id: str | None = None,
    config_file: str | Path | None = None,
    overrides: list[str] | None = None,
    use_preset: bool = True,
    **fields: Any,
) -> RunConfig:
    """Resolve a run's config, later sources winning: RunConfig defaults < the preset for
    (algo, env) < the config file < explicit ``fields`` (CLI flags) < ``key=value`` overrides."""
    from rlgen.agents.presets import preset_for

    file_data: dict[str, Any] = {}
    if config_file:
        file_data = read_yaml_mapping(config_file, "config file")
        try:  # unknown keys and values wrong on their own: a one-line error naming the file
            RunConfig.from_dict(file_data, validate=False).check_values()
        except ConfigError as exc:
            raise ConfigError(f"config file {config_file}: {exc}") from None
    for item in overrides or []:
        key = parse_override(item)[0][0]
        if key in ("algo", "env_id"):  # they choose the preset, which an override would come too late for
            flag = "--algo" if key == "algo" else "--env"
            raise ConfigError(f"-p {key}=... comes after the preset is chosen; give {flag} (or {key} in the config "
                              "file) instead")
    defaults = RunConfig()
    algo = algo or file_data.get("algo") or defaults.algo
    env_id = env_id or file_data.get("env_id") or defaults.env_id
    if algo not in ALGOS:
        raise ConfigError(f"unknown algorithm {algo!r}; choose one of: {', '.join(ALGOS)}")
    check_env_id(env_id)
    data: dict[str, Any] = preset_for(algo, env_id) if use_preset else {}
    # every key the file sets wins over the preset, whatever its value (a file's n_envs: 1 is meant even
    # though 1 is also the default), and mappings merge at every depth, as -p overrides do
    data = deep_merge(data, file_data)
    data = deep_merge(data, {k: v for k, v in fields.items() if v is not None})
    data["algo"], data["env_id"] = algo, env_id
    config = apply_overrides(RunConfig.from_dict(data, validate=False), overrides or []).refuse_unused_settings()
    if config.run_name is not None and not is_folder_name(config.run_name):  # new runs only: saved ones resume
        raise ConfigError(f"run_name {config.run_name!r} is not a folder name: the run goes to out_dir/run_name; "
                          f"give one name without '/' or '..' (a parent folder goes in out_dir)")
    return config


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``override``'s keys set into it: mappings merge key by key at every depth, any other value
    (a list, a number) replaces what was there. Neither argument is changed."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged
