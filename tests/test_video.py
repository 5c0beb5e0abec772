"""Videos of a run's policy: rlgen eval --video and rlgen demos collect --video (rlgen.agents.video)."""

import numpy as np
import pytest

from rlgen.agents import evaluate, train
from rlgen.agents import video as video_module
from rlgen.cli import main


def _renders() -> bool:
    return video_module.select_renderer() is not None


needs_renderer = pytest.mark.skipif(not _renders(), reason="no offscreen OpenGL renderer (EGL or OSMesa) here")


@pytest.fixture(scope="module")
def mujoco_run(tmp_path_factory):
    """A tiny PPO run on InvertedPendulum-v5 (MuJoCo): enough to roll out and render."""
    from rlgen.agents import RunConfig

    out = tmp_path_factory.mktemp("runs")
    config = RunConfig(algo="ppo", env_id="InvertedPendulum-v5", total_steps=256, n_envs=1, seed=0, out_dir=str(out),
                       hyperparams={"n_steps": 128, "batch_size": 64, "n_epochs": 1, "policy_kwargs": {"net_arch": [8]}},
                       eval_freq=256, eval_episodes=1, progress_bar=False).validated()
    return train(config).run_dir


def _gif_frames(path):
    from PIL import Image, ImageSequence

    with Image.open(path) as image:
        return [np.asarray(frame.convert("RGB")) for frame in ImageSequence.Iterator(image)]


@needs_renderer
def test_eval_writes_a_gif_of_the_evaluated_episodes_and_the_same_returns(mujoco_run, tmp_path, capsys):
    plain = evaluate(mujoco_run, episodes=2)
    recorded = evaluate(mujoco_run, episodes=2, video=tmp_path / "clip.gif", video_steps=4, video_size=(48, 32))
    np.testing.assert_array_equal(plain, recorded)  # recording changes nothing the evaluation measures
    frames = _gif_frames(tmp_path / "clip.gif")
    # up to 4 frames per episode, of the size asked for (Pillow merges identical neighbours, so at most 8)
    assert 2 <= len(frames) <= 8 and frames[0].shape == (32, 48, 3)
    assert frames[0].std() > 0  # a picture, not a blank frame
    assert [p.name for p in tmp_path.iterdir()] == ["clip.gif"]  # no partial file left beside it
    assert main(["eval", str(mujoco_run), "--episodes", "1", "--video", str(tmp_path / "cli.gif"),
                 "--video-steps", "3", "--video-size", "40x30"]) == 0
    assert "video: " in capsys.readouterr().out and _gif_frames(tmp_path / "cli.gif")[0].shape == (30, 40, 3)


@needs_renderer
def test_an_mp4_holds_one_frame_per_step_recorded(mujoco_run, tmp_path):
    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")
    evaluate(mujoco_run, episodes=2, video=tmp_path / "clip.mp4", video_steps=5, video_size=(64, 48))
    reader = imageio_ffmpeg.read_frames(str(tmp_path / "clip.mp4"))
    meta = next(reader)
    assert tuple(meta["size"]) == (64, 48)
    assert sum(1 for _ in reader) == 10


@needs_renderer
def test_demos_collect_records_every_episode_it_rolls_out(mujoco_run, tmp_path):
    out, clip = tmp_path / "demos.npz", tmp_path / "demos.gif"
    assert main(["demos", "collect", str(mujoco_run), "-n", "2", "--out", str(out), "--no-progress",
                 "--video", str(clip), "--video-steps", "3", "--video-size", "32x32"]) == 0
    frames = _gif_frames(clip)
    assert out.is_file() and 2 <= len(frames) <= 6 and frames[0].shape == (32, 32, 3)


def test_the_camera_follows_a_locomotion_agent_and_leaves_other_envs_alone():
    import gymnasium as gym
    import mujoco

    ant = gym.make("Ant-v5", render_mode="rgb_array")
    pendulum = gym.make("InvertedPendulum-v5", render_mode="rgb_array")  # its model has no "track" camera
    try:
        assert ant.unwrapped.mujoco_renderer.camera_id == -1  # Gymnasium's free camera stays where it starts
        assert video_module.follow_the_agent([ant]) is True
        track = mujoco.mj_name2id(ant.unwrapped.model, mujoco.mjtObj.mjOBJ_CAMERA, "track")
        assert track >= 0 and ant.unwrapped.mujoco_renderer.camera_id == track
        assert video_module.follow_the_agent([pendulum]) is False
        assert pendulum.unwrapped.mujoco_renderer.camera_id == -1
    finally:
        ant.close()
        pendulum.close()


def test_the_first_renderer_that_works_is_chosen_and_none_names_the_packages(monkeypatch):
    monkeypatch.delenv("MUJOCO_GL", raising=False)
    monkeypatch.delenv("PYOPENGL_PLATFORM", raising=False)
    monkeypatch.setattr(video_module, "_chosen", {})
    tried = []

    def osmesa_only(backend):
        tried.append(backend)
        return None if backend == "osmesa" else "libEGL.so.1: cannot open shared object file"

    monkeypatch.setattr(video_module, "_probe", osmesa_only)
    assert video_module.select_renderer() == "osmesa" and tried == ["egl", "osmesa"]
    import os

    assert os.environ["MUJOCO_GL"] == "osmesa"
    assert video_module.select_renderer() == "osmesa" and len(tried) == 2  # chosen once per process

    monkeypatch.setattr(video_module, "_chosen", {})
    monkeypatch.delenv("MUJOCO_GL")
    monkeypatch.setattr(video_module, "_probe", lambda backend: f"{backend} is missing")
    assert video_module.select_renderer() is None
    problem = video_module.renderer_problem()
    assert "MUJOCO_GL=egl: egl is missing" in problem and "libegl1" in problem and "libosmesa6" in problem


@pytest.mark.parametrize("command", ["eval", "demos collect"])
def test_no_renderer_is_a_one_line_error_and_leaves_no_file(mujoco_run, tmp_path, monkeypatch, capsys, command):
    monkeypatch.delenv("MUJOCO_GL", raising=False)
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setattr(video_module, "_chosen", {})
    monkeypatch.setattr(video_module, "_probe", lambda backend: f"{backend}: no such library")
    extra = ["--out", str(tmp_path / "demos.npz")] if command == "demos collect" else []
    assert main([*command.split(), str(mujoco_run), "--video", str(tmp_path / "clip.gif"), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "no offscreen OpenGL renderer works here" in err and "libegl1" in err and "libosmesa6" in err
    assert list(tmp_path.iterdir()) == []


def test_bad_video_requests_are_one_line_errors(mujoco_run, tmp_path, monkeypatch, capsys):
    def error(argv):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1
        return err

    run = str(mujoco_run)
    assert "unknown format '.avi'" in error(["eval", run, "--video", str(tmp_path / "x.avi")])
    assert "does not exist" in error(["eval", run, "--video", str(tmp_path / "no" / "x.gif")])
    with pytest.raises(SystemExit):
        main(["eval", run, "--video", "x.gif", "--video-size", "big"])
    assert "WIDTHxHEIGHT" in capsys.readouterr().err
    monkeypatch.setattr(video_module.importlib.util, "find_spec", lambda name: None)
    assert "rlgen[video]" in error(["eval", run, "--video", str(tmp_path / "x.mp4")])
    monkeypatch.undo()
    monkeypatch.setenv("MUJOCO_GL", "bogus")
    assert "MUJOCO_GL='bogus' is not a renderer" in error(["eval", run])


def test_an_env_that_cannot_render_says_why_in_its_own_words(tiny_config, tmp_path, monkeypatch, capsys):
    from gymnasium.envs.classic_control.cartpole import CartPoleEnv

    run = train(tiny_config(total_steps=256, eval_freq=0)).run_dir

    def broken(self):
        raise RuntimeError("no display server for pygame")

    monkeypatch.setattr(CartPoleEnv, "render", broken)
    assert main(["eval", str(run), "--episodes", "1", "--video", str(tmp_path / "c.gif")]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "no display server for pygame" in err and "OpenGL" not in err  # not a MuJoCo env: no GL advice
    assert not (tmp_path / "c.gif").exists()
    # an env that refuses render_mode when made: one line naming the env
    assert main(["eval", str(run), "--episodes", "1", "--video", str(tmp_path / "c.gif"), "--video-size", "8x8"]) == 2
    assert "CartPole-v1 cannot render as asked: it takes no frame size" in capsys.readouterr().err


def test_an_env_that_takes_its_frame_size_as_render_kwargs_records_at_that_size(tiny_config, tmp_path):
    # shimmy's dm_control tasks take render_kwargs={width, height}, not width and height: --video-size was a
    # "could not be built" error for them
    run = train(tiny_config(env_id="tests.fakes:SizedFrame-v0", total_steps=256, eval_freq=0)).run_dir
    evaluate(run, episodes=1, video=tmp_path / "clip.gif", video_size=(20, 16))
    frames = _gif_frames(tmp_path / "clip.gif")
    assert frames[0].shape == (16, 20, 3) and len(frames) >= 2
    evaluate(run, episodes=1, video=tmp_path / "default.gif")  # without a size: the env's own
    assert _gif_frames(tmp_path / "default.gif")[0].shape == (10, 12, 3)


@pytest.mark.parametrize(("backend", "package"), [("osmesa", "libosmesa6"), ("egl", "libegl1")])
def test_a_mujoco_gl_whose_library_is_missing_is_one_line_naming_the_package(monkeypatch, capsys, backend, package):
    # MUJOCO_GL=osmesa without libosmesa6 made every env build fail: a misleading "the env's own code failed"
    # for Gymnasium's tasks (and CartPole, as rlgen's MuJoCo tasks are imported), a traceback for dm_control's
    from rlgen.cli import common

    monkeypatch.setenv("MUJOCO_GL", backend)
    monkeypatch.setattr(common, "gl_library_loads", lambda name: False)
    assert main(["envs"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert f"MUJOCO_GL={backend} needs" in err and package in err and "unset MUJOCO_GL" in err


def test_the_gl_library_probe_finds_what_the_loader_finds():
    from rlgen.cli.common import gl_library_loads

    assert gl_library_loads("c")  # libc.so.6
    assert not gl_library_loads("NoSuchLibraryAnywhere")
