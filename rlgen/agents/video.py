"""Videos of a policy: frames rendered offscreen while it is evaluated, written as a GIF or an MP4.

Rendering is never needed for training; it is chosen here, when a video is asked for. MuJoCo renders offscreen
through OpenGL: with ``MUJOCO_GL`` unset, :func:`select_renderer` tries EGL (GPU or Mesa, Debian's ``libegl1``)
and then OSMesa (software, ``libosmesa6``) in a throw-away process and keeps the first that works; a value the
user set is kept as it is. Envs that render without OpenGL (Gymnasium's classic control, through pygame) need
neither.

Formats: ``.gif`` through Pillow (a dependency of matplotlib; one palette, taken from the first frame, for all
frames, so colours do not flicker) and ``.mp4`` (H.264) through imageio-ffmpeg (``pip install 'rlgen[video]'``),
which streams frames to its bundled ffmpeg. Both are written under a temporary name and renamed when complete,
so an interrupted recording never leaves a truncated file under the name asked for.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rlgen.agents.config import ConfigError

VIDEO_FORMATS = (".gif", ".mp4")
VIDEO_EXTRA_HINT = "pip install 'rlgen[video]'"
RENDERERS = ("egl", "osmesa")
_PACKAGES = {"egl": "libegl1", "osmesa": "libosmesa6"}
_PROBE = "import mujoco; c = mujoco.GLContext(8, 8); c.make_current(); c.free()"
_chosen: dict[str, str | None] = {}  # the renderer picked in this process, or None and why none works


class RendererUnavailable(ConfigError):
    """No offscreen OpenGL renderer works on this machine."""


def check_video_path(path: str | Path) -> Path:
    """``path`` if it can be written as a video here: a known format, its writer installed, its folder there."""
    path = Path(path)
    if path.suffix.lower() not in VIDEO_FORMATS:
        raise ConfigError(f"video file {path}: unknown format {path.suffix or '(no extension)'!r}; "
                          f"use {' or '.join(VIDEO_FORMATS)}")
    if path.suffix.lower() == ".mp4" and importlib.util.find_spec("imageio_ffmpeg") is None:
        raise ConfigError(f"writing {path.name} needs imageio-ffmpeg: {VIDEO_EXTRA_HINT} (or write a .gif)")
    if path.suffix.lower() == ".gif" and importlib.util.find_spec("PIL") is None:
        raise ConfigError(f"writing {path.name} needs Pillow: pip install pillow (or write an .mp4)")
    if not path.parent.is_dir():
        raise ConfigError(f"video file {path}: folder {path.parent} does not exist")
    return path


def _probe(backend: str) -> str | None:
    """None if MuJoCo can open an offscreen context with ``backend``, else the last line of why not."""
    env = {**os.environ, "MUJOCO_GL": backend, "PYOPENGL_PLATFORM": backend}
    try:
        done = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    if done.returncode == 0:
        return None
    lines = [line.strip() for line in done.stderr.splitlines() if line.strip()]
    return lines[-1] if lines else f"exit status {done.returncode}"


def select_renderer() -> str | None:
    """The offscreen OpenGL backend MuJoCo will use (``MUJOCO_GL``), chosen once per process: the user's if set,
    else the first of EGL and OSMesa that opens a context (and it is set in ``os.environ`` for MuJoCo and
    PyOpenGL to read). None when neither works: :func:`renderer_problem` says why."""
    if "backend" in _chosen:
        return _chosen["backend"]
    if os.environ.get("MUJOCO_GL"):
        _chosen["backend"] = os.environ["MUJOCO_GL"]
        return _chosen["backend"]
    reasons = []
    # glfw opens a window's context: worth a try only where there is a display to open it on
    for backend in RENDERERS + (("glfw",) if os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY") else ()):
        reason = _probe(backend)
        if reason is None:
            os.environ["MUJOCO_GL"] = backend
            os.environ.setdefault("PYOPENGL_PLATFORM", backend)
            _chosen["backend"] = backend
            return backend
        reasons.append(f"MUJOCO_GL={backend}: {reason}")
    _chosen["backend"] = None
    _chosen["problem"] = "; ".join(reasons)
    return None


def check_renderer(envs: Iterable[Any]) -> None:
    """Raise :class:`RendererUnavailable` (one line) if any of ``envs`` renders through MuJoCo's OpenGL and no
    backend works here; asking MuJoCo anyway would fail with a traceback (and Gymnasium's viewer with a second
    one as it is collected). Envs that render otherwise pass."""
    if select_renderer() is None and renders_with_opengl(envs):
        raise RendererUnavailable(renderer_problem())


def renderer_problem() -> str:
    """Why no offscreen renderer works, with the system packages that provide one."""
    packages = " or ".join(f"{_PACKAGES[b]} (MUJOCO_GL={b})" for b in RENDERERS)
    why = _chosen.get("problem") or f"MUJOCO_GL={os.environ.get('MUJOCO_GL')} failed"
    return f"no offscreen OpenGL renderer works here ({why}); install Debian's {packages}"


class VideoFile:
    """A video being written: ``add(frame)`` for each HxWx3 uint8 frame, then ``close()`` (or use it as a context
    manager). An MP4 streams to ffmpeg as frames come; a GIF keeps each frame as 8-bit palette indices (one byte
    a pixel) until it is closed. The file appears under its name only once complete; leaving the block by an
    exception discards it."""

    def __init__(self, path: str | Path, fps: float):
        self.path = check_video_path(path)
        self.fps = float(fps)
        self.frames = 0
        self._partial = self.path.with_name(f".{self.path.stem}.partial{self.path.suffix}")
        self._gif: list[Any] = []
        self._mp4: Any = None

    def add(self, frame: np.ndarray) -> None:
        frame = np.ascontiguousarray(frame[:, :, :3], dtype=np.uint8)
        if self.path.suffix.lower() == ".gif":
            from PIL import Image

            image = Image.fromarray(frame)
            # one palette, the first frame's, for every frame: colours do not flicker from frame to frame
            self._gif.append(image.quantize(colors=256) if not self._gif else image.quantize(palette=self._gif[0]))
        else:
            if self._mp4 is None:
                self._mp4 = _mp4_writer(self._partial, frame.shape[1], frame.shape[0], self.fps)
            self._mp4.send(frame)
        self.frames += 1

    def close(self) -> Path:
        if not self.frames:
            self.discard()
            raise ConfigError(f"no frames to write to {self.path}")
        try:
            if self._mp4 is not None:
                self._mp4.close()
                self._mp4 = None
            else:  # GIF delays are whole hundredths of a second, and viewers treat below 2 as slow
                first, *rest = self._gif
                first.save(self._partial, format="GIF", save_all=True, append_images=rest, loop=0,
                           duration=max(20, round(1000 / self.fps)))
                self._gif = []
            os.replace(self._partial, self.path)
        finally:
            self._partial.unlink(missing_ok=True)
        return self.path

    def discard(self) -> None:
        if self._mp4 is not None:
            try:
                self._mp4.close()
            except Exception:  # a broken pipe to ffmpeg: the partial file goes anyway
                pass
            self._mp4 = None
        self._gif = []
        self._partial.unlink(missing_ok=True)

    def __enter__(self) -> VideoFile:
        return self

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            self.discard()


def _mp4_writer(path: Path, width: int, height: int, fps: float) -> Any:
    import imageio_ffmpeg

    # H.264 in yuv420p needs even sides: macro_block_size 2 pads an odd side by one pixel rather than rescaling
    writer = imageio_ffmpeg.write_frames(str(path), (width, height), fps=fps, codec="libx264", pix_fmt_out="yuv420p",
                                         macro_block_size=2, quality=6, output_params=["-f", "mp4"],
                                         ffmpeg_log_level="error")
    writer.send(None)  # start the generator
    return writer


def render_fps(venv: Any, default: float = 30.0) -> float:
    """The frame rate at which the env's frames play in real time: its ``render_fps`` metadata (MuJoCo tasks:
    1 / dt), else ``default``."""
    metadata = venv.get_attr("metadata", indices=[0])[0] or {}
    fps = metadata.get("render_fps")
    return float(fps) if fps else default


TRACKING_CAMERA = "track"


def follow_the_agent(envs: Iterable[Any]) -> bool:
    """Point a MuJoCo env's offscreen camera at the model's ``track`` camera (Gymnasium's locomotion models define
    one that follows the body's centre of mass) when no camera was chosen: Gymnasium 1.4 otherwise renders from
    a free camera that stays where the episode began, and a walking agent leaves the picture. Returns whether
    it did; envs without such a camera (or not MuJoCo) are left as they are."""
    followed = False
    for env in envs:
        env = getattr(env, "unwrapped", env)
        renderer = getattr(env, "mujoco_renderer", None)
        model = getattr(env, "model", None)
        if renderer is None or model is None or getattr(renderer, "camera_id", None) != -1:
            continue
        if getattr(renderer, "camera_name", None) not in (None, TRACKING_CAMERA):
            continue
        import mujoco

        camera = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, TRACKING_CAMERA)
        if camera >= 0:
            renderer.camera_id = camera
            followed = True
    return followed


@dataclass
class FrameRecorder:
    """Renders a vectorised env with one env into a :class:`VideoFile`, through SB3's ``evaluate_policy``
    callback: a frame after every step that does not end an episode (the env has already been reset after one
    that does), at most ``steps_per_episode`` per episode when given."""

    venv: Any
    video: VideoFile
    steps_per_episode: int | None = None
    _in_episode: int = 0
    _opengl: bool | None = None

    def __call__(self, local_vars: dict[str, Any], _globals: dict[str, Any]) -> None:
        if local_vars.get("done"):
            self._in_episode = 0
            return
        if self.steps_per_episode is not None and self._in_episode >= self.steps_per_episode:
            return
        self._in_episode += 1
        self.video.add(self.grab())

    def grab(self) -> np.ndarray:
        if self._opengl is None:
            self._opengl = renders_with_opengl(self.venv.get_attr("unwrapped"))
        return render_frame(lambda: self.venv.env_method("render", indices=[0])[0], self._opengl)


def renders_with_opengl(envs: Iterable[Any]) -> bool:
    """Whether any of ``envs`` renders through MuJoCo's OpenGL (Gymnasium's MuJoCo tasks and those built on them)."""
    return any(hasattr(getattr(env, "unwrapped", env), "mujoco_renderer") for env in envs)


def render_frame(render: Callable[[], Any], opengl: bool = True) -> np.ndarray:
    """``render()``'s RGB frame, or a one-line error naming why there is none (no OpenGL renderer for a MuJoCo
    env, a missing package such as pygame for classic control, not rgb_array)."""
    try:
        frame = render()
    except Exception as exc:  # the renderer's own message, on one line
        if opengl and _chosen.get("backend") is None and "problem" in _chosen:
            raise RendererUnavailable(renderer_problem()) from None
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        hint = f"; {renderer_problem()}" if opengl else ""
        raise RendererUnavailable(f"rendering failed ({type(exc).__name__}: {reason}){hint}") from None
    if not isinstance(frame, np.ndarray) or frame.ndim != 3:
        raise ConfigError(f"the env rendered {type(frame).__name__}, not an RGB image; it needs render_mode='rgb_array'")
    return frame
