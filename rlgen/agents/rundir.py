"""The run directory: its file names, its layout, and what makes two configs the same run.

Every part of rlgen that reads or writes a run (the training loop, evaluation, the benchmark runner and the
run archive) goes through :class:`RunDir`, so a file name or the rule "is this the same run" is defined once::

    config.yaml          the resolved RunConfig
    model.zip            the final SB3 model
    vecnormalize.npz     VecNormalize statistics (loaded without pickle)
    checkpoint/          the latest resumable state: step_N/ (model.zip, vecnormalize.npz, an off-policy
                         agent's replay buffer replay_buffer.npz, each reward wrapper's state), written whole,
                         and progress.json, written last, which names it: a checkpoint counts once its progress
                         file names it (runs checkpointed before step_N/ existed hold the files at the top)
    vime.pt, gail.pt...  each reward wrapper's final state; <name>_log.jsonl: a bonus's values per rollout
    best/                the policy of the best periodic evaluation so far (model.zip, vecnormalize.npz as they
                         were then, best.json: its step count and mean return)
    eval.csv             evaluation history: timesteps, mean/std of the true env return
    learning_curve.png   evaluation and training returns against steps
    monitor/             per-env episode logs (SB3 Monitor)
    tb/                  TensorBoard logs
    demos.json           an imitation run's demo file: path, sha256, episodes, subsample
    bc.json              behaviour cloning's statistics
    result.json          final metrics, written when the run finishes
    error.json           a benchmark run that failed: the error and its traceback
"""

from __future__ import annotations

import csv
import inspect
import io
import json
import shutil
from pathlib import Path
from typing import Any

from rlgen.agents.config import ConfigError, RunConfig, scheduled_settings
from rlgen.atomic import atomic_write_text

CONFIG_FILE = "config.yaml"
MODEL_FILE = "model.zip"
VECNORM_FILE = "vecnormalize.npz"
REPLAY_FILE = "replay_buffer.npz"
CHECKPOINT_DIR = "checkpoint"
PROGRESS_FILE = "progress.json"
EVAL_FILE = "eval.csv"
RESULT_FILE = "result.json"
PLOT_FILE = "learning_curve.png"
BC_FILE = "bc.json"
BEST_DIR = "best"
BEST_FILE = "best.json"
DEMOS_RECORD = "demos.json"
ERROR_FILE = "error.json"
MONITOR_DIR = "monitor"
TB_DIR = "tb"
EVAL_FIELDS = ("timesteps", "mean_return", "std_return", "episodes", "wall_time")

# What an archive keeps of a finished run (a report reads these), and what it adds for a run whose policy
# later stages roll out.
RECORD_PATTERNS = (CONFIG_FILE, RESULT_FILE, EVAL_FILE, f"{MONITOR_DIR}/*.monitor.csv", "*_log.jsonl", "*.json",
                   f"{BEST_DIR}/{BEST_FILE}")
MODEL_PATTERNS = (MODEL_FILE, VECNORM_FILE, f"{BEST_DIR}/{MODEL_FILE}", f"{BEST_DIR}/{VECNORM_FILE}")

NOT_IDENTITY = ("out_dir", "run_name", "total_steps", "progress_bar", "torch_threads", "demos")
"""RunConfig fields that do not make a run what it is: where it lives, how long it trains, how it shows
progress, and the demo file's path (its bytes count instead: see :meth:`RunDir.demos_sha256`)."""


def settings(config: RunConfig) -> dict[str, Any]:
    """What makes a run what it is: every RunConfig field but :data:`NOT_IDENTITY`."""
    return {k: v for k, v in config.to_dict().items() if k not in NOT_IDENTITY}


def setting_difference(a: RunConfig, b: RunConfig) -> tuple[str, Any, Any] | None:
    """The first setting in which two configs differ, as (its dotted name, a's value, b's value), e.g.
    ("hyperparams.learning_rate", 0.0003, 0.001); None when they train the same run whatever their folders,
    budgets and progress display."""
    return _first_difference(settings(a), settings(b), "")


def _first_difference(a: Any, b: Any, where: str) -> tuple[str, Any, Any] | None:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in list(a) + [k for k in b if k not in a]:
            found = _first_difference(a.get(key), b.get(key), f"{where}.{key}" if where else str(key))
            if found is not None:
                return found
        return None
    return None if a == b else (where, a, b)


def same_settings(a: RunConfig, b: RunConfig) -> bool:
    """Whether two configs train the same run, whatever their folders, budgets and progress display."""
    return setting_difference(a, b) is None


class RunDir:
    """One run directory (see the module docstring for its layout)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    @property
    def name(self) -> str:
        return self.path.name

    # -- layout ----------------------------------------------------------------------------------
    def __truediv__(self, rel: str) -> Path:
        return self.path / rel

    @property
    def config_file(self) -> Path:
        return self.path / CONFIG_FILE

    @property
    def model_file(self) -> Path:
        return self.path / MODEL_FILE

    @property
    def vecnorm_file(self) -> Path:
        return self.path / VECNORM_FILE

    @property
    def checkpoint_dir(self) -> Path:
        return self.path / CHECKPOINT_DIR

    @property
    def progress_file(self) -> Path:
        return self.checkpoint_dir / PROGRESS_FILE

    @property
    def checkpoint_files(self) -> Path:
        """The folder of the latest checkpoint's files: the one its progress file names (each checkpoint is
        written whole into a folder of its own before the progress file names it, so a checkpoint cut short
        leaves the previous one intact); ``checkpoint/`` itself for runs checkpointed before that."""
        try:
            name = json.loads(self.progress_file.read_text()).get("files")
        except (OSError, ValueError, AttributeError):
            name = None
        if isinstance(name, str) and name and name == Path(name).name and not name.startswith("."):
            return self.checkpoint_dir / name
        return self.checkpoint_dir

    @property
    def eval_file(self) -> Path:
        return self.path / EVAL_FILE

    @property
    def result_file(self) -> Path:
        return self.path / RESULT_FILE

    @property
    def best_dir(self) -> Path:
        return self.path / BEST_DIR

    @property
    def monitor_dir(self) -> Path:
        return self.path / MONITOR_DIR

    @property
    def tb_dir(self) -> Path:
        return self.path / TB_DIR

    # -- what is there ---------------------------------------------------------------------------
    def holds_run(self) -> bool:
        """Whether a run was started here (its config was written)."""
        return self.config_file.is_file()

    def started(self) -> bool:
        """Whether a run here got far enough to keep: a checkpoint, or a result (behaviour cloning keeps no
        checkpoint). A config alone is a start that failed, or was killed before its first checkpoint."""
        return self.has_checkpoint() or self.result_file.is_file()

    def clear_unstarted(self) -> None:
        """Remove what a start that never reached a checkpoint left (the files of this layout only; anything
        else in the folder stays), so the run can be started again from nothing."""
        if self.started():
            raise RuntimeError(f"{self.path} holds a run that reached a checkpoint; it is not cleared")
        for name in (CONFIG_FILE, EVAL_FILE, PLOT_FILE, BC_FILE, DEMOS_RECORD, ERROR_FILE, MODEL_FILE, VECNORM_FILE):
            (self.path / name).unlink(missing_ok=True)
        for pattern in ("*_log.jsonl", "*.pt"):
            for path in self.path.glob(pattern):
                path.unlink()
        for folder in (BEST_DIR, CHECKPOINT_DIR, MONITOR_DIR, TB_DIR):
            shutil.rmtree(self.path / folder, ignore_errors=True)

    def read_config(self, validate: bool = True) -> RunConfig:
        if not self.holds_run():
            raise ConfigError(f"{self.path} is not a run directory (no {CONFIG_FILE})")
        return RunConfig.load(self.config_file, validate=validate)

    def read_result(self) -> dict[str, Any] | None:
        """result.json of a finished run, None if there is none (or it cannot be read)."""
        try:
            data = json.loads(self.result_file.read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def mismatch(self, config: RunConfig) -> str | None:
        """Why the run in this directory is not the run ``config`` describes, in a phrase (another setting, by
        :func:`setting_difference`, or a larger budget: its later steps are not the run asked for); None when
        it is (a smaller budget is the same run, not yet trained as far), or when the directory holds no
        readable config to compare."""
        try:
            saved = self.read_config(validate=False)
        except Exception:  # no run here yet, or a config from no known version: nothing to compare
            return None
        difference = setting_difference(saved, config)
        if difference is not None:
            key, theirs, mine = difference
            return f"{self.path.name} was trained with {key}={theirs!r}, not {mine!r}"
        if saved.total_steps > config.total_steps:
            return (f"{self.path.name} was trained for a budget of {saved.total_steps:,} env steps, "
                    f"not {config.total_steps:,}")
        scheduled = scheduled_settings(saved.hyperparams)
        if saved.total_steps < config.total_steps and scheduled:
            # extended, its schedule would jump: not the run a fresh one of the larger budget is
            return (f"{self.path.name} has {', '.join(scheduled)} on a schedule laid over {saved.total_steps:,} env "
                    f"steps, not {config.total_steps:,}")
        return None

    def finished(self, total_steps: int = 0) -> bool:
        """Whether the run finished with at least ``total_steps`` env steps (its result.json says so)."""
        result = self.read_result()
        try:
            return result is not None and int(result["timesteps"]) >= total_steps
        except (KeyError, TypeError, ValueError):
            return False

    def has_checkpoint(self) -> bool:
        return self.progress_file.is_file()

    def checkpoint_timesteps(self) -> int:
        """The env steps of the latest checkpoint; ConfigError naming the file when it is damaged."""
        try:
            value = json.loads(self.progress_file.read_text())["timesteps"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"{self.progress_file} is damaged ({type(exc).__name__}: {exc}); the checkpoint it "
                              f"names cannot be trusted: start the run again under another run_name "
                              "(--run-name)") from None
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ConfigError(f"{self.progress_file} is damaged: timesteps is {value!r}, not a step count; the "
                              f"checkpoint it names cannot be trusted: start the run again under another run_name "
                              "(--run-name)")
        return value

    def checkpoint_code(self) -> list[dict[str, Any]]:
        """The code of each training session up to the latest checkpoint, as progress.json records it (a list of
        :func:`rlgen.versions.code_version` records, each with ``from_step``); empty for a checkpoint from before
        rlgen kept it."""
        try:
            code = json.loads(self.progress_file.read_text()).get("code")
        except (OSError, ValueError, AttributeError):
            return []
        return [entry for entry in code if isinstance(entry, dict)] if isinstance(code, list) else []

    def policy_file(self, best: bool = False) -> tuple[Path, Path]:
        """(model, VecNormalize statistics) of the final policy (an unfinished run: its latest checkpoint's) or,
        with ``best``, of the best periodic evaluation."""
        if best:
            return self.best_dir / MODEL_FILE, self.best_dir / VECNORM_FILE
        if self.model_file.is_file():
            return self.model_file, self.vecnorm_file
        return self.checkpoint_files / MODEL_FILE, self.checkpoint_files / VECNORM_FILE

    def has_model(self) -> bool:
        """Whether a policy can be rolled out here (a run restored from an archive may have none)."""
        return self.model_file.is_file() or (self.checkpoint_files / MODEL_FILE).is_file()

    def record_files(self, with_model: bool = False) -> list[Path]:
        """The files an archive keeps of this run, relative to it."""
        patterns = RECORD_PATTERNS + (MODEL_PATTERNS if with_model else ())
        found = {p.relative_to(self.path) for pattern in patterns for p in self.path.glob(pattern) if p.is_file()}
        return sorted(found)

    # -- training episodes (SB3 Monitor files) --------------------------------------------------------
    def trim_monitor_files(self, timesteps: int, n_envs: int) -> float | None:
        """On resume from the checkpoint at ``timesteps``: drop the training episodes each env finished after it
        (the run rolls back to the checkpoint and plays those steps again), atomically, file by file. Envs step
        in lockstep, so env i had taken ``timesteps // n_envs`` steps at the checkpoint; an episode counts while
        the running sum of its file's lengths stays within that. Returns the files' first ``t_start`` (Monitor's
        clock), which a resumed Monitor takes over so its time column keeps rising; None without files."""
        per_env = timesteps // max(n_envs, 1)
        starts = []
        for path in sorted(self.monitor_dir.glob("*.monitor.csv")):
            lines = path.read_text().splitlines()
            if len(lines) < 2:
                continue
            try:
                starts.append(float(json.loads(lines[0].lstrip("#"))["t_start"]))
            except (ValueError, KeyError, TypeError):
                pass
            kept, steps = lines[:2], 0
            for row in lines[2:]:
                try:
                    length = int(float(row.split(",")[1]))
                except (IndexError, ValueError):  # a row cut short by a kill
                    break
                if steps + length > per_env:
                    break
                steps += length
                kept.append(row)
            if len(kept) < len(lines):
                atomic_write_text(path, "".join(f"{line}\n" for line in kept))
        return min(starts) if starts else None

    # -- evaluation history ----------------------------------------------------------------------
    def read_eval_history(self) -> list[dict[str, float]]:
        return read_eval_history(self.eval_file)

    def write_eval_history(self, history: list[dict[str, float]]) -> None:
        write_eval_history(self.eval_file, history)

    # -- the best evaluation's policy ------------------------------------------------------------
    def read_best(self) -> dict[str, Any]:
        """best/best.json ({} if there is none): the step count and return of the best evaluation."""
        try:
            return dict(json.loads((self.best_dir / BEST_FILE).read_text()))
        except (OSError, ValueError, TypeError):
            return {}

    def has_best(self) -> bool:
        """Whether the run kept the policy of its best evaluation (runs trained before rlgen kept one did not)."""
        return bool(self.read_best()) and (self.best_dir / MODEL_FILE).is_file()

    def drop_best_after(self, timesteps: int) -> None:
        """On resume: a best evaluated after the checkpoint the run resumes from (a crash came between) is
        dropped with the eval.csv rows past it, so that best/ always is the policy of a row of eval.csv."""
        if self.read_best().get("timesteps", -1) > timesteps:
            shutil.rmtree(self.best_dir)

    # -- identity --------------------------------------------------------------------------------
    def demos_record(self) -> dict[str, Any]:
        """demos.json ({} if the run learns from no demos, or predates the record)."""
        try:
            data = json.loads((self.path / DEMOS_RECORD).read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def record_demos(self, config: RunConfig, resume: bool = False) -> None:
        """Write which demo file the run learns from (path and sha256); resuming on a demo file whose bytes
        changed raises ConfigError naming both hashes."""
        from rlgen.imitation.demos import demo_record, demo_record_mismatch

        if not config.demos:
            return
        recorded = self.demos_record()
        if resume and recorded.get("sha256") is not None:
            mismatch = demo_record_mismatch(recorded, config.demos)
            if mismatch is not None:
                raise ConfigError(f"{self.path} was trained on {mismatch}: resuming would change its "
                                  f"demonstrations mid-run")
            return
        record = demo_record(config.demos, config.demo_episodes, config.demo_subsample)
        atomic_write_text(self.path / DEMOS_RECORD, json.dumps(record, indent=2))

    def resume_refusal(self, config: RunConfig) -> str | None:
        """Why ``config`` cannot continue the run saved here (None: it can): another setting (the saved
        config.yaml is the run's; a resumed run trains on with it), a behaviour-cloning run (it trains in one go),
        or no checkpoint to resume from."""
        if self.config_file.is_file() and self.read_config(validate=False).imitation == "bc":
            return f"{self.path} is a behaviour-cloning run; it trains in one go and cannot be resumed"
        if not self.has_checkpoint():
            hint = (": the run stopped before its first checkpoint; start it again without --resume"
                    if self.holds_run() else "")
            return f"nothing to resume in {self.path}: no {CHECKPOINT_DIR}/{PROGRESS_FILE}{hint}"
        saved = self.read_config(validate=False)
        difference = _first_difference(*_with_wrapper_defaults(saved, config), "")
        if difference is not None:
            name, kept, asked = difference
            return (f"{self.path} holds a run with {_setting_text(name, kept)}; it cannot be resumed with "
                    f"{_setting_text(name, asked)}")
        return None


def _with_wrapper_defaults(saved: RunConfig, given: RunConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """:func:`settings` of both configs, where a reward wrapper's setting is given on one side and left to its
    default on the other (``--bonus-model pixelcnn`` on resuming a run that named no model) filled in on that
    other with the default the run loop would have used: a setting spelled out is the same run. So too an agent's
    hyperparameter (``-p gamma=0.99`` for a PPO run that left gamma to SB3)."""
    from rlgen.agents.config import algo_class
    from rlgen.agents.envstack import wrapper_specs

    a, b = settings(saved), settings(given)
    if saved.bonus != given.bonus or saved.imitation != given.imitation or saved.algo != given.algo:
        return a, b  # that difference is the one to name
    try:
        specs = wrapper_specs(given)
        agent = inspect.signature(algo_class(given.algo).__init__).parameters
    except (KeyError, ValueError, ImportError, ConfigError):  # an unknown bonus or algo, or sb3-contrib missing:
        # the config's own checks name it
        return a, b
    groups = [("hyperparams", dict(agent), {})]
    # the run loop builds each wrapper with the run's seed and its spec's defaults under the config's settings
    groups += [(spec.settings_key, spec.cls.setting_parameters(), {"seed": given.seed, **spec.defaults})
               for spec in specs]
    for field_name, params, run_defaults in groups:
        mine, theirs = a.get(field_name), b.get(field_name)
        if not isinstance(mine, dict) or not isinstance(theirs, dict):
            continue
        for key in set(mine) ^ set(theirs):
            param = params.get(key)
            if key in run_defaults:
                default = run_defaults[key]
            elif param is not None and param.default is not inspect.Parameter.empty:
                default = param.default
            else:
                continue
            (theirs if key in mine else mine)[key] = default
    return a, b


def _setting_text(name: str, value: Any) -> str:
    return f"{name} not set" if value is None else f"{name} {value!r}"


def write_eval_history(path: Path, history: list[dict[str, float]]) -> None:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=EVAL_FIELDS)
    writer.writeheader()
    writer.writerows(history)
    atomic_write_text(path, out.getvalue())


def read_eval_history(path: Path) -> list[dict[str, float]]:
    """The rows of eval.csv, each column of its header as a number ([] without it: files of older rlgen versions
    hold fewer columns than :data:`EVAL_FIELDS`); ConfigError naming the file and the line when one lacks a
    column of the header or holds no number there."""
    if not path.is_file():
        return []
    history = []
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        for row in reader:
            try:
                history.append({name: float(value) for name, value in row.items()})  # type: ignore[arg-type]
            except (TypeError, ValueError):
                name = next(name for name, value in row.items() if name is None or not _is_number(value))
                value = row.get(name)
                text = ",".join([*(v for k, v in row.items() if k is not None and v is not None), *row.get(None, [])])
                what = ("more values than the header's columns" if name is None else
                        f"no {name}" if value is None else f"{name} {value!r}, not a number")
                raise ConfigError(f"{path} is damaged: line {reader.line_num} ({text!r}) has {what}; correct or "
                                  "delete that line") from None
    return history


def _is_number(text: str | None) -> bool:
    try:
        float(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
    return True


# -- SB3 Monitor files -------------------------------------------------------------------------------
MONITOR_SUFFIX = ".monitor.csv"


def monitor_file(prefix: str | Path) -> Path:
    """The file SB3's Monitor writes for ``filename=prefix`` (``<prefix>.monitor.csv``)."""
    prefix = str(prefix)
    return Path(prefix if prefix.endswith(MONITOR_SUFFIX) else prefix + MONITOR_SUFFIX)


def read_monitor_file(path: Path) -> tuple[list[str], list[list[str]]]:
    """(column names, rows as lists of text) of a Monitor file: its first line is Monitor's JSON, its second the
    columns (``r, l, t`` and the info keywords). Its values hold no commas (rlgen writes none), so rows split on
    them; a last row cut short by a kill comes as it is. ([], []) for a missing file."""
    if not path.is_file():
        return [], []
    lines = path.read_text().splitlines()
    header = lines[1].split(",") if len(lines) > 1 else []
    return header, [line.split(",") for line in lines[2:] if line]


def align_monitor_columns(path: Path, columns: tuple[str, ...], renamed: dict[str, str] | None = None) -> None:
    """Before a resumed run's Monitor appends to ``path`` (which writes no header then), make the file's columns
    ``columns`` first: a file written with other info keywords (an older rlgen's) is rewritten, atomically, each
    value kept under its column's name (``renamed`` maps old names to new ones), ``nan`` (not recorded) in the new
    columns of the old rows, and a column this run no longer writes (a measure whose meaning changed) kept after
    them, so that nothing recorded is lost (the rows appended later are shorter; readers take a missing value as
    not recorded). A file already so, or missing, or without a header, is left alone."""
    if not path.is_file():
        return
    lines = path.read_text().splitlines()
    if len(lines) < 2 or tuple(lines[1].split(","))[:len(columns)] == columns:
        return
    old = [(renamed or {}).get(name, name) for name in lines[1].split(",")]
    kept = (*columns, *(name for name in old if name not in columns))
    rows = []
    for line in filter(None, lines[2:]):
        values = dict(zip(old, line.split(","), strict=False))
        rows.append(",".join(values.get(name, "nan") for name in kept))
    atomic_write_text(path, "".join(f"{line}\n" for line in [lines[0], ",".join(kept), *rows]))
