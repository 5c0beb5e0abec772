"""What every ``rlgen`` command shares: the help format, argument types, the options of commands that write
a run directory, deprecated spellings, and how an error becomes one line and an exit code.

Imports no command module of ``rlgen.cli`` (they import this one), so the command line has no import cycle.
"""

from __future__ import annotations

import argparse
import errno
import os
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rlgen.agents.config import MAX_SEED, ConfigError, RunConfig, is_folder_name, resume_config
from rlgen.interrupt import sigterm_as_interrupt

if TYPE_CHECKING:
    from rlgen.agents import RunResult

Subparsers = argparse._SubParsersAction
"""What ``ArgumentParser.add_subparsers`` returns: each command module's ``register`` adds its commands."""


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows an option's default where it has one; no "(default: None)" after options whose help says it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        default = action.default
        if default is None or default is False or default is argparse.SUPPRESS or default in ([], ""):
            return action.help or ""
        return super()._get_help_string(action) or ""


def _whole_number(text: str, least: int, what: str) -> int:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < least or not value.is_integer():
        raise argparse.ArgumentTypeError(f"must be a {what} whole number, got {text!r}")
    return int(value)


def positive_int(text: str) -> int:
    """argparse type for counts written as 1000, 1e6 or 2.5e5."""
    return _whole_number(text, 1, "positive")


def nonnegative_int(text: str) -> int:
    """argparse type for a seed or an offset: 0, 100, 1e3."""
    return _whole_number(text, 0, "non-negative")


def run_seed(text: str) -> int:
    """argparse type for a run's seed, e.g. 1e3: at most 2**32 - 1 (:data:`rlgen.agents.config.MAX_SEED`)."""
    value = _whole_number(text, 0, "non-negative")
    if value > MAX_SEED:
        raise argparse.ArgumentTypeError(f"must be at most 2**32 - 1 = {MAX_SEED}, the largest numpy's generator "
                                         f"takes, got {text!r}")
    return value


def folder_name(text: str) -> str:
    """argparse type for --run-name: one folder's name (:func:`rlgen.agents.config.is_folder_name`)."""
    if not is_folder_name(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a folder name: the run goes to OUT/NAME (--out); give one "
                                         f"name without '/' or '..'")
    return text


def video_size(text: str) -> tuple[int, int]:
    """argparse type for a frame size written WIDTHxHEIGHT, e.g. 320x240."""
    parts = text.lower().split("x")
    if len(parts) != 2 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise argparse.ArgumentTypeError(f"not a frame size WIDTHxHEIGHT (e.g. 320x240): {text!r}")
    return int(parts[0]), int(parts[1])


def add_video_options(p: argparse.ArgumentParser, what: str) -> None:
    """--video, --video-steps and --video-size: record ``what`` as a .gif or .mp4 (rlgen.agents.video)."""
    p.add_argument("--video", default=None, metavar="FILE",
                   help=f"record {what} into FILE, a .gif or an .mp4 (.mp4: pip install 'rlgen[video]'), rendered "
                   "offscreen: MUJOCO_GL if set, else EGL, else OSMesa (Debian's libegl1 or libosmesa6); "
                   "Gymnasium's classic-control and Box2D tasks draw with pygame instead (pip install pygame)")
    p.add_argument("--video-steps", type=positive_int, default=None, metavar="N",
                   help="record only the first N steps of each episode (the episodes still run to their end)")
    p.add_argument("--video-size", type=video_size, default=None, metavar="WxH",
                   help="frame size for envs that take width and height (Gymnasium's MuJoCo tasks; default: "
                   "the env's own)")


# -- messages on stderr --------------------------------------------------------------------------------

def warn(message: str) -> None:
    """One ``rlgen: warning: ...`` line on stderr. Printed, not ``warnings.warn``: Python hides a
    DeprecationWarning raised outside ``__main__``, and a user of the command line must see it."""
    print(f"rlgen: warning: {message}", file=sys.stderr)


def warn_deprecated(old: str, new: str) -> None:
    warn(f"{old} is deprecated; use {new} (the old spelling will be removed in the next release)")


class DeprecatedOption(argparse.Action):
    """The old spelling of an option: stores into the new option's ``dest`` and warns once used. Hidden from
    --help, which shows only the spelling to use."""

    def __init__(self, option_strings: list[str], dest: str, new: str = "", **kwargs: Any) -> None:
        super().__init__(option_strings, dest, help=argparse.SUPPRESS, **kwargs)
        self.new = new

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        warn_deprecated(option_string or self.option_strings[0], self.new)
        setattr(namespace, self.dest, values)


def add_deprecated_option(parser: argparse.ArgumentParser, old: str, new: str, **kwargs: Any) -> None:
    """Keep ``old`` working for one release as a warned alias of the already added option ``new``."""
    target = next(a for a in parser._actions if new in a.option_strings)
    if target.type is not None:  # parsed as the new spelling is
        kwargs["type"] = target.type
    parser.add_argument(old, action=DeprecatedOption, new=new, dest=target.dest, metavar=target.metavar,
                        **kwargs)


# -- commands that write a run directory ---------------------------------------------------------------

def add_run_dir_options(p: argparse.ArgumentParser, parent: str, name: str, out_note: str = "") -> None:
    """``--out`` and ``--run-name`` mean the same in every command that creates a run directory: the run
    goes to OUT/RUN_NAME (``out_note``: what a command still does otherwise, for its --out help)."""
    p.add_argument("--out", dest="out_dir", default=None, metavar="DIR",
                   help=f"parent folder of run directories (default {parent}){out_note}")
    p.add_argument("--run-name", type=folder_name, default=None, metavar="NAME",
                   help=f"run directory name (default {name}), a single folder name")


def add_training_options(p: argparse.ArgumentParser, *, run_name: str, overrides_example: str,
                         resume_help: str, progress_help: str = "hide the progress bar") -> None:
    """The options of the commands that train an agent through ``build_config`` (train, imitate)."""
    p.add_argument("--steps", dest="total_steps", type=positive_int, default=None, metavar="N",
                   help="total env steps, e.g. 1e6")
    p.add_argument("--seed", type=run_seed, default=None, help="random seed, at most 2**32 - 1 (default 0)")
    p.add_argument("--n-envs", dest="n_envs", type=positive_int, default=None, metavar="N",
                   help="envs stepped together")
    p.add_argument("--config", dest="config_file", default=None, metavar="FILE",
                   help="YAML file of RunConfig keys")
    p.add_argument("-p", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help=f"override a config key or SB3 hyperparameter (repeatable), e.g. {overrides_example}")
    add_run_dir_options(p, parent="runs", name=run_name)
    p.add_argument("--no-preset", action="store_true", help="ignore the preset for (algo, env)")
    p.add_argument("--resume", metavar="RUN_DIR", default=None, help=resume_help)
    p.add_argument("--no-progress", action="store_true", help=progress_help)


# Flags that name one of a run's settings: with --resume they must agree with the run's own (the run refuses a
# different one, naming both), rather than be dropped without a word.
RESUME_SETTING_FLAGS = {"algo": "algo", "env_id": "env_id", "seed": "seed", "n_envs": "n_envs", "bonus": "bonus",
                        "method": "imitation", "demo_episodes": "demo_episodes", "demo_subsample": "demo_subsample"}
# Flags that only shape a new run: refused with --resume, which trains on with RUN_DIR's config.yaml.
NEW_RUN_FLAGS = {"config_file": "--config", "out_dir": "--out", "run_name": "--run-name", "no_preset": "--no-preset",
                 "demos": "--demos", "bc_pretrain": "--bc-pretrain", "n_modes": "--n-modes", "reward": "--reward"}


def start_run(args: argparse.Namespace, overrides: list[str], build: Callable[[], RunConfig]) -> RunConfig:
    """The config a training command runs: RUN_DIR's own with --resume, else ``build()``; with its
    progress bar as the flags say. With --resume, a flag naming a setting is held to the run's (the run refuses
    another value), and a flag that only shapes a new run is an error."""
    if args.resume:
        given = [flag for dest, flag in NEW_RUN_FLAGS.items() if getattr(args, dest, None) not in (None, False)]
        if given:
            raise ConfigError(f"{given[0]} is for a new run; --resume trains on with {args.resume}'s own config.yaml")
        config = resume_config(args.resume, args.total_steps, overrides)
        for dest, name in RESUME_SETTING_FLAGS.items():
            if getattr(args, dest, None) is not None:
                setattr(config, name, getattr(args, dest))
        from rlgen.agents.rundir import RunDir

        refusal = RunDir(config.run_dir).resume_refusal(config)  # before the checks of a config's own sense
        if refusal is not None:
            raise ConfigError(refusal)
    else:
        config = build()
    if args.no_progress:
        config.progress_bar = False
    return config


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C during a training command's run; its message says what is kept of the run and how to go on."""

    def __init__(self, run_dir: Path):
        from rlgen.agents.rundir import RunDir

        if RunDir(run_dir).has_checkpoint():
            super().__init__(f"the last checkpoint is kept; resume with --resume {shlex.quote(str(run_dir))}")
        else:
            super().__init__("no checkpoint was written yet; run the same command again to start the run anew")


def train_run(args: argparse.Namespace, config: RunConfig) -> RunResult:
    """Train ``config`` (resuming with --resume), naming the run directory first so a user can look in."""
    from rlgen.agents import train  # looked up when called, so tests can stand in for training

    print(f"run directory: {config.run_dir}")
    try:
        return train(config, resume=bool(args.resume))
    except KeyboardInterrupt:
        raise RunInterrupted(config.run_dir) from None


def print_result(result: RunResult, note: str = "") -> None:
    """The end of a training command: the final evaluation and where to look next."""
    print(f"final evaluation: {result.eval_mean_return:.2f} ± {result.eval_std_return:.2f} "
          f"after {result.timesteps} steps ({result.wall_time:.0f} s{note})")
    print(f"learning curve:   {result.run_dir / 'learning_curve.png'}")
    print(f"TensorBoard:      tensorboard --logdir {result.run_dir / 'tb'}")


# -- running a command ---------------------------------------------------------------------------------

# The values of MUJOCO_GL that MuJoCo's Python package accepts on import (Linux; glx and the on/off words included)
MUJOCO_GL_VALUES = ("egl", "osmesa", "glfw", "glx", "enable", "enabled", "on", "true", "1",
                    "disable", "disabled", "off", "false", "0")


# The offscreen backends whose library PyOpenGL loads as soon as a MuJoCo or dm_control module is imported (every
# env build imports rlgen's MuJoCo tasks): the library's name for the loader, and the Debian package that has it
MUJOCO_GL_LIBRARIES = {"egl": ("EGL", "libegl1"), "osmesa": ("OSMesa", "libosmesa6")}


def gl_library_loads(name: str) -> bool:
    """Whether ``lib<name>`` can be loaded as PyOpenGL's loader looks for it on Linux (``lib<name>.so``, then
    ``.so.9`` down to ``.so.0``)."""
    import ctypes

    for filename in [f"lib{name}.so", *(f"lib{name}.so.{i}" for i in range(9, -1, -1))]:
        try:
            ctypes.CDLL(filename)
        except OSError:
            continue
        return True
    return False


def check_mujoco_gl() -> None:
    """A MUJOCO_GL that MuJoCo would reject with a traceback when first imported, or that names a backend whose
    library is not installed (PyOpenGL then fails inside every env build, dm_control's with a traceback), as a
    one-line error naming the package instead."""
    value = os.environ.get("MUJOCO_GL", "").lower().strip()
    if value and value not in MUJOCO_GL_VALUES:
        raise ConfigError(f"MUJOCO_GL={os.environ['MUJOCO_GL']!r} is not a renderer MuJoCo knows: use egl (Debian's "
                          f"libegl1), osmesa (libosmesa6) or glfw (a display), or unset it")
    if value in MUJOCO_GL_LIBRARIES and sys.platform.startswith("linux"):
        library, package = MUJOCO_GL_LIBRARIES[value]
        if not gl_library_loads(library):
            others = " or ".join(f"MUJOCO_GL={b} ({p})" for b, (_, p) in MUJOCO_GL_LIBRARIES.items() if b != value)
            raise ConfigError(f"MUJOCO_GL={os.environ['MUJOCO_GL']} needs lib{library}, which is not installed: "
                              f"install Debian's {package}, or use {others}, or unset MUJOCO_GL")


_PATH_ERRNOS = (errno.EACCES, errno.EPERM, errno.EROFS, errno.EISDIR, errno.ENOTDIR, errno.ENOENT)


def run_command(args: argparse.Namespace) -> int:
    """Run the parsed command; a user's mistake is one stderr line and exit code 2."""
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        check_mujoco_gl()
        with sigterm_as_interrupt():
            code = func(args)
        sys.stdout.flush()  # a reader gone shows here, not as a traceback at Python's exit
        return code
    except ConfigError as exc:
        print(f"rlgen: error: {exc}", file=sys.stderr)
        return 2
    except FloatingPointError as exc:  # a learned reward or model diverged: say which, in one line
        print(f"rlgen: error: {exc} (the run's last checkpoint is kept)", file=sys.stderr)
        return 1
    except KeyboardInterrupt as exc:  # a training command's says what is kept (RunInterrupted)
        print(f"rlgen: interrupted ({exc})" if str(exc) else "rlgen: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # stdout's reader went away (`rlgen bench ... --plan | head`): stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # Python's flush at exit would raise again
        return 1
    except OSError as exc:
        if exc.errno in _PATH_ERRNOS and exc.filename:
            # a path the user gave cannot be written or read (permissions, a read-only disk, a file where a
            # folder is needed): one line naming it; atomic writes left every earlier file whole
            print(f"rlgen: error: {exc.strerror.lower() if exc.strerror else 'cannot use'}: {exc.filename}",
                  file=sys.stderr)
            return 1
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        # every file rlgen keeps is written atomically: what was complete before the write that failed stays
        print(f"rlgen: error: no space left on the device writing {exc.filename or 'a file'} (files written "
              f"before it, the last complete checkpoint among them, are intact; free space, then resume with "
              f"--resume RUN_DIR)", file=sys.stderr)
        return 1

