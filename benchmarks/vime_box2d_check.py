"""Check rlgen's VIME tasks (SparseMountainCar-v1, SparseCartPoleSwingup-v1) against rllab's Box2D models.

VIME ran its sparse mountain car and cart-pole swing-up on rllab's Box2D envs; rlgen integrates equations of
motion instead (a bead on the track, the classic cart-pole ODE). This script builds both Box2D worlds from the
facts of rllab's models (mountain_car.xml.mako, cartpole.xml.mako, box2d_env.py and the two envs' resets; the
code here is written anew) and

  (a) replays identical action sequences (zero force, constant pushes, N(0, 1)-clipped and uniform random) from
      identical start states (reset seeds 0..4) in Box2D and in rlgen's -v1 env, and prints the largest
      differences of x (and of the pole angle) within the first 20, 100 and 500 steps, and the energy left in
      unforced swings;
  (b) runs ``--episodes`` episodes (reset seeds 0..N-1) of the three initial policies of
      benchmarks/sparse_thresholds.py (uniform; ppo-init: N(0, 1) clipped; trpo-init: N(0, e^-2) clipped; the same
      random streams: one default_rng(12345) across the episodes, the uniform actions seeded per episode as
      ``action_space.seed(seed)`` does) on the Box2D models, on rlgen's env and on the change proposed for it,
      and prints success rates, the earliest rewarded step and the farthest progress.

Box2D loses energy where rlgen's frictionless models kept it, so two changes were fitted here: DampedMountainCar
(a drag ``damping * m * speed`` along the car's track) and DraggedCartPole (a torque ``-pole_drag * theta_dot**3``
at the pole's joint). rlgen's -v1 envs now have them as keywords with the fitted values (``damping``, ``pole_drag``);
the "rlgen" rows here set them to 0, the models this check started from.

Box2D worlds (Box2D 2.3.10): gravity (0, -10), no sleeping, warm starting, continuous physics, no sub-stepping, one
``Step(0.05, 8, 3)`` per action, the force applied first at the cart's origin along its own x axis, the action
clipped to the control limits. Mountain car: a 0.4 x 0.2 box of density 5 (0.4 kg, friction 0.0005) on a static
chain of 201 points along y = 1 - cos(pi x / 2), x in [-2, 2] (the chain's friction is Box2D's default 0.2);
observed: the box's centre x and x velocity. Cart-pole: a 1 kg cart (4/sqrt 12 by 3/sqrt 12, density 1), a 0.1 kg
pole 1 x 0.1 (density 1) on a revolute joint at the cart's top centre, the cart on a prismatic joint along x to
a static track (the joints keep their bodies from colliding, so no contact acts); observed: cart x, x velocity,
pole angle (Box2D's, counter-clockwise; rlgen's theta is clockwise, so a start state theta maps to 2 pi - theta)
and angular velocity.

Two resets for each Box2D model:
  rllab       what rllab's reset did: one world for the whole run, every body put back to its state as built,
              then the drawn values written in. The car is built at (0, 0.05) with its box 5 to 10 cm inside the
              track, so Box2D's contact solver pushes it out over the first steps. The cart-pole's reset moves the
              cart to x and turns the pole about its own origin, which stays at x = 0: the joint is pulled apart
              by x and the pole's velocity does not match the cart's, and Box2D's joint solver repairs both in the
              first step (changing the drawn angle by up to about a radian and the drawn angular velocity by a
              factor of about 4).
  settled     a fresh world per episode holding the drawn state consistently: the car resting on the track at the
              valley (dropped from rest 1.5 cm above it and stepped 60 times without force, x = -0.0002) with the
              drawn x velocity; the pole on the cart's joint with velocities that satisfy the joint. Part (a)
              starts from these.

Usage: python benchmarks/vime_box2d_check.py [--episodes 200] [--jobs 1] [--out benchmarks/results/vime_box2d_check.md]
Needs Box2D (``pip install Box2D==2.3.10``, in a scratch venv: it is not an rlgen dependency); rlgen's side runs
when rlgen and gymnasium import, and is left out otherwise.
"""

from __future__ import annotations

import argparse
import math
import shlex
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import Box2D
import numpy as np

try:
    import gymnasium as gym

    import rlgen.envs  # noqa: F401  (registers rlgen's tasks)
    from rlgen.envs.cartpole_swingup import SparseCartPoleSwingupEnv
    from rlgen.envs.mountain_car import VIMEMountainCarEnv
except ImportError:  # Box2D's side still runs
    HAVE_RLGEN = False
else:
    HAVE_RLGEN = True

GRAVITY, DT, VELOCITY_ITERATIONS, POSITION_ITERATIONS = 10.0, 0.05, 8, 3
EPISODE_STEPS = 500
POLICIES = {"uniform": None, "ppo-init": 1.0, "trpo-init": math.exp(-1.0)}
MC_ID, CP_ID = "rlgen/SparseMountainCar-v1", "rlgen/SparseCartPoleSwingup-v1"
PROPOSED_DAMPING = 0.9
"""The proposed drag of SparseMountainCar-v1 (1/s): of DAMPING_GRID, the one whose hand-solved episodes (pump)
take as long as Box2D's; part (a)'s trajectories fit it about as well as 1.1 and 1.3."""
DAMPING_GRID = (0.0, 0.5, 0.7, 0.9, 1.1, 1.3)
PROPOSED_POLE_DRAG = 0.0006
"""The proposed cubic drag at SparseCartPoleSwingup-v1's pole joint (N m s^3), the best of POLE_DRAG_GRID on the
energy of unforced swings."""
POLE_DRAG_GRID = (0.0, 0.0002, 0.0004, 0.0005, 0.0006, 0.0007, 0.0008, 0.001)


def draws(seed: int) -> np.random.Generator:
    """The generator gymnasium's ``reset(seed=seed)`` and ``action_space.seed(seed)`` start from."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed)))


def new_world() -> Box2D.b2World:
    world = Box2D.b2World(gravity=(0, -GRAVITY), doSleep=False)
    world.warmStarting, world.continuousPhysics, world.subStepping = True, True, False
    return world


def body_state(body: Box2D.b2Body) -> tuple[float, ...]:
    """rllab's per-body state: origin x, y, angle, linear velocity x, y, angular velocity."""
    return (*body.position, body.angle, *body.linearVelocity, body.angularVelocity)


def set_body_state(body: Box2D.b2Body, state: tuple[float, ...]) -> None:
    body.position = state[0:2]
    body.angle = state[2]
    body.linearVelocity = state[3:5]
    body.angularVelocity = state[5]


def push(body: Box2D.b2Body, force: float) -> None:
    """rllab's force control: ``force`` along the body's x axis, at its origin."""
    body.ApplyForce(body.GetWorldVector((force, 0.0)), body.GetWorldPoint((0.0, 0.0)), True)


class Box2DMountainCar:
    """rllab's Box2D mountain car; ``cart`` is the box's state as built (rllab: at (0, 0.05), at rest)."""

    max_force, goal, limit = 1.0, 0.6, 2.0

    def __init__(self, cart: tuple[float, ...] = (0.0, 0.05, 0.0, 0.0, 0.0, 0.0)) -> None:
        self.world = new_world()
        self.cart = self.world.CreateDynamicBody(position=cart[0:2])
        self.cart.CreatePolygonFixture(box=(0.2, 0.1), density=5.0, friction=0.0005)
        track = self.world.CreateStaticBody(position=(0.0, 1.0))
        m = 100
        track.CreateChainFixture(vertices_chain=[(2.0 * i / m, math.sin((i / m - 0.5) * math.pi))
                                                 for i in range(-m, m + 1)])
        set_body_state(self.cart, cart)
        self.initial = body_state(self.cart)

    def reset(self, x_dot: float) -> np.ndarray:
        set_body_state(self.cart, self.initial)
        self.cart.linearVelocity = (x_dot, self.cart.linearVelocity[1])
        return self.obs()

    def obs(self) -> np.ndarray:
        return np.array([self.cart.position[0], self.cart.linearVelocity[0]])

    def step(self, action: float) -> tuple[np.ndarray, float, bool]:
        push(self.cart, float(np.clip(action, -self.max_force, self.max_force)))
        self.world.Step(DT, VELOCITY_ITERATIONS, POSITION_ITERATIONS)
        x = self.cart.position[0]
        done = bool(x >= self.goal or abs(x) >= self.limit)
        return self.obs(), float(done), done

    def energy(self) -> float:
        v = self.cart.linearVelocity
        return (0.5 * self.cart.mass * (v[0] ** 2 + v[1] ** 2) + 0.5 * self.cart.inertia * self.cart.angularVelocity ** 2
                + self.cart.mass * GRAVITY * self.cart.worldCenter[1])


def _settle() -> tuple[float, ...]:
    model = Box2DMountainCar((0.0, 0.18, 0.0, 0.0, 0.0, 0.0))
    for _ in range(60):
        model.step(0.0)
    return body_state(model.cart)


SETTLED_CAR = _settle()
"""The car at rest on the track at the valley (its centre 0.166 above the valley's bottom: half the box's
height and the two shapes' 1 cm skins above the track at the box's corners, x = +-0.2)."""
REST_ENERGY = Box2DMountainCar(SETTLED_CAR).energy()

CART_WIDTH, CART_HEIGHT = 4.0 / math.sqrt(12.0), 3.0 / math.sqrt(12.0)


class Box2DCartPole:
    """rllab's Box2D cart-pole."""

    max_force, limit, cos_threshold = 10.0, 3.0, 0.8

    def __init__(self) -> None:
        self.world = world = new_world()
        self.cart = world.CreateDynamicBody(position=(0.0, CART_HEIGHT / 2))
        self.cart.CreatePolygonFixture(box=(CART_WIDTH / 2, CART_HEIGHT / 2), density=1.0, friction=0.0005)
        self.pole = world.CreateDynamicBody(position=(0.0, CART_HEIGHT))
        self.pole.CreatePolygonFixture(vertices=[(0.05, 0.0), (0.05, 1.0), (-0.05, 1.0), (-0.05, 0.0)],
                                       density=1.0, friction=0.000002, groupIndex=-1)
        track = world.CreateStaticBody(position=(0.0, CART_HEIGHT / 2))
        track.CreatePolygonFixture(box=(100.0, 0.1), friction=0.000002, groupIndex=-1)
        world.CreateRevoluteJoint(bodyA=self.cart, bodyB=self.pole, anchor=(0.0, CART_HEIGHT))
        world.CreatePrismaticJoint(bodyA=track, bodyB=self.cart)  # axis x, anchors at both origins
        self.initial = body_state(self.cart), body_state(self.pole)

    def reset_rllab(self, x: float, x_dot: float, angle: float, angle_dot: float) -> np.ndarray:
        """As rllab's reset: the bodies as built, then the cart moved and the pole turned about its origin."""
        set_body_state(self.cart, self.initial[0])
        set_body_state(self.pole, self.initial[1])
        self.cart.position = (x, self.cart.position[1])
        self.cart.linearVelocity = (x_dot, self.cart.linearVelocity[1])
        self.pole.angle = angle
        self.pole.angularVelocity = angle_dot
        return self.obs()

    def place(self, x: float, x_dot: float, angle: float, angle_dot: float) -> np.ndarray:
        """The state itself: the pole on the cart's joint, its centre moving as the joint demands."""
        set_body_state(self.cart, (x, CART_HEIGHT / 2, 0.0, x_dot, 0.0, 0.0))
        self.pole.position, self.pole.angle = (x, CART_HEIGHT), angle
        arm = self.pole.worldCenter - self.pole.position
        set_body_state(self.pole, (x, CART_HEIGHT, angle, x_dot - angle_dot * arm[1], angle_dot * arm[0], angle_dot))
        return self.obs()

    def obs(self) -> np.ndarray:
        return np.array([self.cart.position[0], self.cart.linearVelocity[0], self.pole.angle,
                         self.pole.angularVelocity])

    def step(self, action: float) -> tuple[np.ndarray, float, bool]:
        push(self.cart, float(np.clip(action, -self.max_force, self.max_force)))
        self.world.Step(DT, VELOCITY_ITERATIONS, POSITION_ITERATIONS)
        x, angle = self.cart.position[0], self.pole.angle
        on_track = abs(x) <= self.limit
        return self.obs(), float(math.cos(angle) > self.cos_threshold and on_track), not on_track

    def energy(self) -> float:
        """Kinetic plus potential energy, zero with the pole hanging at rest."""
        total = 0.0
        for body in (self.cart, self.pole):
            v = body.linearVelocity
            inertia = body.inertia - body.mass * body.localCenter.lengthSquared  # Box2D's is about the origin
            total += (0.5 * body.mass * (v[0] ** 2 + v[1] ** 2) + 0.5 * inertia * body.angularVelocity ** 2
                      + body.mass * GRAVITY * body.worldCenter[1])
        return total - (self.cart.mass * GRAVITY * CART_HEIGHT / 2 + self.pole.mass * GRAVITY * (CART_HEIGHT - 0.5))


if HAVE_RLGEN:
    def DampedMountainCar(damping: float = PROPOSED_DAMPING) -> Any:  # noqa: N802  (read as the class it was)
        """SparseMountainCar-v1's env with a drag ``damping * mass * speed`` along the track (its ``damping``
        keyword, fitted here and now its default; damping=0 is the frictionless bead this check started from)."""
        return VIMEMountainCarEnv(damping=damping)

    def DraggedCartPole(pole_drag: float = PROPOSED_POLE_DRAG) -> Any:  # noqa: N802
        """SparseCartPoleSwingup-v1's env (its registered keywords) with a torque ``-pole_drag * theta_dot**3``
        at the pole's joint (its ``pole_drag`` keyword, fitted here; 0 is the model this check started from)."""
        return SparseCartPoleSwingupEnv(gravity=10.0, force_actions=True, raw_angle=True, pole_drag=pole_drag)


def bead_energy(env: Any) -> float:
    """SparseMountainCar-v1's energy (the bead at the valley's bottom at rest: 0)."""
    x, x_dot = (float(v) for v in env.state)
    slope = math.pi / 2 * math.sin(math.pi * x / 2)
    return 0.5 * env.mass * (1 + slope * slope) * x_dot ** 2 + env.mass * env.gravity * float(env.height(x))


def ode_cartpole_energy(env: Any) -> float:
    """The cart-pole ODE's energy (thin pole of half length l, inertia m l^2 / 3 about its centre)."""
    x, x_dot, theta, theta_dot = (float(v) for v in env.state)
    m, length = env.pole_mass, env.pole_half_length
    vx, vy = x_dot + length * math.cos(theta) * theta_dot, -length * math.sin(theta) * theta_dot
    return (0.5 * env.cart_mass * x_dot ** 2 + 0.5 * m * (vx * vx + vy * vy) + 0.5 * m * length ** 2 / 3 * theta_dot ** 2
            + m * env.gravity * length * (math.cos(theta) + 1.0))


# ----------------------------------------------------------------------------------------------------------------
# Uniform episode runners: reset(seed) -> observation, step(action) -> (observation, reward, done)


class Runner:
    max_force: float
    progress: Callable[[np.ndarray], float]

    def reset(self, seed: int) -> np.ndarray:
        raise NotImplementedError

    def step(self, action: float) -> tuple[np.ndarray, float, bool]:
        raise NotImplementedError


class Box2DCarRunner(Runner):
    max_force = 1.0

    def __init__(self, reset: str) -> None:
        self.mode, self.model = reset, Box2DMountainCar()

    def progress(self, obs: np.ndarray) -> float:
        return float(obs[0])

    def reset(self, seed: int) -> np.ndarray:
        if self.mode == "settled":
            self.model = Box2DMountainCar(SETTLED_CAR)
        return self.model.reset(draws(seed).uniform(-1.0, 1.0))

    def step(self, action: float) -> tuple[np.ndarray, float, bool]:
        return self.model.step(action)


class Box2DPoleRunner(Runner):
    max_force = 10.0

    def __init__(self, reset: str) -> None:
        self.mode, self.model = reset, Box2DCartPole()

    def progress(self, obs: np.ndarray) -> float:
        return math.cos(float(obs[2]))

    def reset(self, seed: int) -> np.ndarray:
        rng = draws(seed)
        x, x_dot, theta, theta_dot = (rng.uniform(-1.0, 1.0), rng.uniform(-2.0, 2.0),
                                      rng.uniform(math.pi - 1.0, math.pi + 1.0), rng.uniform(-3.0, 3.0))
        if self.mode == "rllab":
            return self.model.reset_rllab(x, x_dot, 2 * math.pi - theta, -theta_dot)
        self.model = Box2DCartPole()
        return self.model.place(x, x_dot, 2 * math.pi - theta, -theta_dot)

    def step(self, action: float) -> tuple[np.ndarray, float, bool]:
        return self.model.step(action)


class RlgenRunner(Runner):
    def __init__(self, env: Any, angle_index: int | None = None) -> None:
        self.env, self.angle_index = env, angle_index
        self.max_force = float(env.action_space.high[0])

    def progress(self, obs: np.ndarray) -> float:
        return float(obs[0]) if self.angle_index is None else math.cos(float(obs[self.angle_index]))

    def reset(self, seed: int) -> np.ndarray:
        return self.env.reset(seed=seed)[0]

    def step(self, action: float) -> tuple[np.ndarray, float, bool]:
        obs, reward, terminated, _, _ = self.env.step(np.array([action], dtype=np.float32))
        return obs, float(reward), bool(terminated)


def make_runner(name: str) -> Runner:
    """A runner by name; ``rlgen-car-damped=D`` and ``rlgen-pole-drag=K`` carry the proposed parameter."""
    base, _, value = name.partition("=")
    if base in ("box2d-car-rllab", "box2d-car-settled"):
        return Box2DCarRunner(base.rsplit("-", 1)[1])
    if base in ("box2d-pole-rllab", "box2d-pole-settled"):
        return Box2DPoleRunner(base.rsplit("-", 1)[1])
    if base == "rlgen-car":
        return RlgenRunner(gym.make(MC_ID, damping=0.0).unwrapped)
    if base == "rlgen-car-damped":
        return RlgenRunner(DampedMountainCar(damping=float(value)))
    if base == "rlgen-pole":
        return RlgenRunner(gym.make(CP_ID, pole_drag=0.0).unwrapped, angle_index=2)
    if base == "rlgen-pole-drag":
        return RlgenRunner(DraggedCartPole(pole_drag=float(value)), angle_index=2)
    raise ValueError(name)


def label(name: str) -> str:
    base, _, value = name.partition("=")
    return {"box2d-car-rllab": "Box2D, rllab reset", "box2d-car-settled": "Box2D, settled reset",
            "box2d-pole-rllab": "Box2D, rllab reset", "box2d-pole-settled": "Box2D, consistent reset",
            "rlgen-car": f"rlgen {MC_ID}", "rlgen-pole": f"rlgen {CP_ID}",
            "rlgen-car-damped": f"rlgen -v1 + damping {value}/s (proposed)",
            "rlgen-pole-drag": f"rlgen -v1 + pole drag {value} (proposed)"}[base]


def run_policy(name: str, policy: str, episodes: int) -> dict[str, Any]:
    """``episodes`` episodes of ``policy`` on the runner ``name``, with sparse_thresholds.py's random streams;
    ``pump`` (the car only): full force along the car's velocity, the task solved by hand."""
    runner = make_runner(name)
    rng, std, bound = np.random.default_rng(12345), POLICIES.get(policy), runner.max_force
    successes, first, peaks, lengths = 0, None, [], []
    for seed in range(episodes):
        uniform = draws(seed)
        obs = runner.reset(seed)
        peak, earned, length, done = -math.inf, 0.0, 0, False
        while not done and length < EPISODE_STEPS:
            if policy == "pump":
                action = bound if obs[1] >= 0 else -bound
            elif std is None:
                action = float(np.float32(uniform.uniform(-bound, bound)))
            else:
                action = float(np.float32(np.clip(rng.normal(0.0, std), -bound, bound)))
            obs, reward, done = runner.step(action)
            length += 1
            earned += reward
            peak = max(peak, runner.progress(obs))
            if reward > 0 and (first is None or length < first):
                first = length
        successes += earned > 0
        peaks.append(peak)
        lengths.append(length)
    return {"model": name, "policy": policy, "episodes": episodes, "successes": successes, "first": first,
            "farthest": max(peaks), "median": statistics.median(peaks), "length": float(np.mean(lengths))}


def policy_line(row: dict[str, Any]) -> str:
    first = "never" if row["first"] is None else f"step {row['first']}"
    task = "SparseMountainCar-v1" if "-car" in row["model"] else "SparseCartPoleSwingup-v1"
    return (f"| {task} | {label(row['model'])} | {row['policy']} | {row['successes']}/{row['episodes']} | {first} | "
            f"{row['farthest']:.3g} ({row['median']:.3g}) | {row['length']:.0f} |")


# ----------------------------------------------------------------------------------------------------------------
# (a) replays

STARTS = range(5)
WINDOWS = (20, 100, 500)


def action_sequences(max_force: float, start: int) -> dict[str, np.ndarray]:
    """The action sequences replayed from start ``start`` (in the env's action units: newtons)."""
    rng = np.random.default_rng(1000 + start)
    return {
        "zero": np.zeros(EPISODE_STEPS),
        "push +1": np.full(EPISODE_STEPS, 1.0),
        "push -0.5": np.full(EPISODE_STEPS, -0.5),
        "N(0,1) clipped": np.clip(rng.normal(0.0, 1.0, EPISODE_STEPS), -max_force, max_force),
        "uniform": rng.uniform(-max_force, max_force, EPISODE_STEPS),
    }


def car_replay(start: int, actions: np.ndarray, damping: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """x along the same actions in Box2D (settled start) and in rlgen's env (``damping``: the proposed change),
    up to the step either car leaves the track (|x| >= 2)."""
    env = gym.make(MC_ID, damping=0.0).unwrapped if damping is None else DampedMountainCar(damping=damping)
    env.reset(seed=start)
    model = Box2DMountainCar(SETTLED_CAR)
    model.reset(float(env.state[1]))
    box2d, bead = [], []
    for action in actions:
        box2d.append(model.step(action)[0][0])
        bead.append(float(env.step(np.array([action], dtype=np.float32))[0][0]))
        if abs(box2d[-1]) >= 2 or abs(bead[-1]) >= 2:
            break
    return np.array(box2d), np.array(bead)


def pole_replay(start: int, actions: np.ndarray, pole_drag: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(x, angle) along the same actions in Box2D (consistent start) and in rlgen's env (``pole_drag``: the
    proposed change), rlgen's angle made counter-clockwise, up to the step either cart leaves the track."""
    env = gym.make(CP_ID, pole_drag=0.0).unwrapped if pole_drag is None else DraggedCartPole(pole_drag=pole_drag)
    env.reset(seed=start)
    x, x_dot, theta, theta_dot = (float(v) for v in env.state)
    model = Box2DCartPole()
    model.place(x, x_dot, 2 * math.pi - theta, -theta_dot)
    box2d, ode = [], []
    for action in actions:
        obs, _, done = model.step(action)
        box2d.append((obs[0], obs[2]))
        obs, _, terminated, _, _ = env.step(np.array([action], dtype=np.float32))
        ode.append((obs[0], -obs[2]))
        if done or terminated:
            break
    return np.array(box2d), np.array(ode)


def window_max(diffs: list[np.ndarray]) -> str:
    """The largest difference within each window, over all starts (a window past every replay's end: -)."""
    cells = []
    for window in WINDOWS:
        values = [d[:window].max() for d in diffs if len(d)]
        cells.append(f"{max(values):.3g}" if values and window <= max(map(len, diffs)) else "-")
    return " / ".join(cells)


def angle_difference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(np.angle(np.exp(1j * (a - b))))


def replay_section() -> list[str]:
    lines = ["## (a) The same actions from the same start states", "",
             "Start states: reset seeds 0 to 4 of the rlgen env; Box2D from the settled (car) or consistent (pole) "
             "start holding the same values. Each cell: the largest difference over the five starts within the "
             "first 20 / 100 / 500 steps, up to the step either leaves the track (car |x| >= 2, cart |x| > 3; - "
             "where no replay lasted that long). Pushes in newtons (the car's limit is 1 N, the cart's 10 N).", "",
             "### SparseMountainCar-v1", "",
             "| actions | max abs x diff, rlgen -v1 | max abs x diff, proposed | max x: Box2D / rlgen / proposed | "
             "starts reaching 0.6: Box2D / rlgen / proposed |", "|---|---|---|---|---|"]
    for kind in action_sequences(1.0, 0):
        diffs: dict[str, list[np.ndarray]] = {"rlgen": [], "proposed": []}
        peaks, goals = [[], [], []], [0, 0, 0]
        for start in STARTS:
            actions = action_sequences(1.0, start)[kind]
            box2d, bead = car_replay(start, actions)
            _, damped = car_replay(start, actions, damping=PROPOSED_DAMPING)
            diffs["rlgen"].append(np.abs(box2d - bead))
            n = min(len(box2d), len(damped))
            diffs["proposed"].append(np.abs(box2d[:n] - damped[:n]))
            for i, xs in enumerate((box2d, bead, damped)):
                peaks[i].append(xs.max())
                goals[i] += bool((xs >= 0.6).any())
        lines.append(f"| {kind} | {window_max(diffs['rlgen'])} | {window_max(diffs['proposed'])} | "
                     f"{' / '.join(f'{max(p):.3g}' for p in peaks)} | {' / '.join(map(str, goals))} |")
    lines += ["", "### SparseCartPoleSwingup-v1", "",
              "| actions | max abs x diff, rlgen -v1 | max abs angle diff (rad), rlgen -v1 | max abs x diff, "
              "proposed | max abs angle diff (rad), proposed | steps on the track: Box2D (shortest, longest) |",
              "|---|---|---|---|---|---|"]
    for kind in action_sequences(10.0, 0):
        cells: dict[str, list[np.ndarray]] = {"x": [], "a": [], "px": [], "pa": []}
        spans = []
        for start in STARTS:
            actions = action_sequences(10.0, start)[kind]
            box2d, ode = pole_replay(start, actions)
            cells["x"].append(np.abs(box2d[:, 0] - ode[:, 0]))
            cells["a"].append(angle_difference(box2d[:, 1], ode[:, 1]))
            box2d, dragged = pole_replay(start, actions, pole_drag=PROPOSED_POLE_DRAG)
            cells["px"].append(np.abs(box2d[:, 0] - dragged[:, 0]))
            cells["pa"].append(angle_difference(box2d[:, 1], dragged[:, 1]))
            spans.append(len(box2d))
        lines.append(f"| {kind} | {window_max(cells['x'])} | {window_max(cells['a'])} | {window_max(cells['px'])} | "
                     f"{window_max(cells['pa'])} | {min(spans)}, {max(spans)} |")
    return lines


# ----------------------------------------------------------------------------------------------------------------
# energy of unforced swings, and the fits

ENERGY_STEPS = (1, 20, 100, 500)
POLE_STARTS = {  # rlgen's state (x, x_dot, theta clockwise, theta_dot)
    "hanging, theta_dot 2": (0.0, 0.0, math.pi, 2.0), "hanging, theta_dot 4": (0.0, 0.0, math.pi, 4.0),
    "hanging, theta_dot 6": (0.0, 0.0, math.pi, 6.0), "theta pi-2 at rest": (0.0, 0.0, math.pi - 2.0, 0.0),
    "theta 0.3 at rest": (0.0, 0.0, 0.3, 0.0), "theta 2.5, cart moving": (0.2, 1.0, 2.5, -3.0),
}


def car_energy_curve(kind: str, v0: float, damping: float = PROPOSED_DAMPING) -> list[float]:
    """Energy above the resting car after each of 500 unforced steps from the valley at x velocity v0, as a
    fraction of 0.5 m v0^2."""
    out = []
    if kind == "box2d":
        model = Box2DMountainCar(SETTLED_CAR)
        model.reset(v0)
    else:
        env = gym.make(MC_ID, damping=0.0).unwrapped if kind == "rlgen" else DampedMountainCar(damping=damping)
        env.reset(seed=0)
        env.state = np.array([0.0, v0])
    for _ in range(EPISODE_STEPS):
        if kind == "box2d":
            model.step(0.0)
            out.append(model.energy() - REST_ENERGY)
        else:
            env.step(np.zeros(1, dtype=np.float32))
            out.append(bead_energy(env))
    return [e / (0.5 * 0.4 * v0 * v0) for e in out]


def pole_energy_curve(kind: str, state: tuple[float, ...], pole_drag: float = PROPOSED_POLE_DRAG) -> list[float]:
    """Energy (zero: hanging at rest) after each of 500 unforced steps from rlgen's ``state``, as a fraction of
    the start's (the cart may roll off the track: no episode end here)."""
    x, x_dot, theta, theta_dot = state
    out = []
    if kind == "box2d":
        model = Box2DCartPole()
        model.place(x, x_dot, 2 * math.pi - theta, -theta_dot)
        start = model.energy()
        for _ in range(EPISODE_STEPS):
            model.step(0.0)
            out.append(model.energy() / start)
        return out
    env = gym.make(CP_ID, pole_drag=0.0).unwrapped if kind == "rlgen" else DraggedCartPole(pole_drag=pole_drag)
    env.reset(seed=0)
    env.state = np.array(state, dtype=np.float64)
    start = ode_cartpole_energy(env)
    for _ in range(EPISODE_STEPS):
        env.step(np.zeros(1, dtype=np.float32))
        out.append(ode_cartpole_energy(env) / start)
    return out


def pick(curve: list[float]) -> str:
    return " / ".join(f"{curve[step - 1]:.3f}" for step in ENERGY_STEPS)


def energy_section() -> list[str]:
    lines = ["", "### Unforced swings: the energy left", "",
             "Mountain car from the valley with x velocity v0, zero force: energy above the resting car as a "
             "fraction of 0.5 m v0^2, after 1 / 20 / 100 / 500 steps (Box2D: settled start).", "",
             "| v0 | Box2D | rlgen -v1 | proposed (damping) |", "|---|---|---|---|"]
    for v0 in (0.5, 1.0, 2.0):
        lines.append(f"| {v0} | {' | '.join(pick(car_energy_curve(kind, v0)) for kind in ('box2d', 'rlgen', 'damped'))} |")
    lines += ["", "Cart-pole, zero force (rlgen's theta: 0 up, clockwise; Box2D's start the same state): energy "
              "(zero: hanging at rest) after 1 / 20 / 100 / 500 steps as a fraction of the start's.", "",
              "| start (x, x_dot, theta, theta_dot) | Box2D | rlgen -v1 | proposed (pole drag) |", "|---|---|---|---|"]
    starts = dict(POLE_STARTS)
    for seed in range(2):
        env = gym.make(CP_ID, pole_drag=0.0).unwrapped
        env.reset(seed=seed)
        starts[f"reset seed {seed}"] = tuple(float(v) for v in env.state)
    for name, state in starts.items():
        curves = [pick(pole_energy_curve(kind, state)) for kind in ("box2d", "rlgen", "dragged")]
        lines.append(f"| {name} ({', '.join(f'{v:.2f}' for v in state)}) | {' | '.join(curves)} |")
    return lines


def loss_sources() -> list[str]:
    """Box2D's unforced swings with the step cut tenfold (10 world steps of 0.005 s per action) and, for the car,
    without friction (the cart's 0.0005 against the chain's default 0.2 mixes to sqrt(0.0005 * 0.2) = 0.01)."""
    lines = ["", "### Where Box2D's losses come from", "",
             "Box2D only, zero force: the car from the valley at v0 = 1 (energy above rest as a fraction of "
             "0.5 m v0^2), the pole hanging with theta_dot 4 (energy as a fraction of the start's), after 1 / 20 / "
             "100 steps of 0.05 s.", "", "| model | one 0.05 s world step per action | ten 0.005 s world steps |",
             "|---|---|---|"]
    for name, friction in (("car, friction as built (0.01)", True), ("car, friction 0", False), ("pole", None)):
        cells = []
        for substeps in (1, 10):
            model: Box2DMountainCar | Box2DCartPole
            if friction is None:
                model = Box2DCartPole()
                model.place(0.0, 0.0, math.pi, -4.0)
                start, scale = 0.0, model.energy()
            else:
                model = Box2DMountainCar(SETTLED_CAR)
                if not friction:
                    model.cart.fixtures[0].friction = 0.0
                    for contact in model.world.contacts:  # made when the car was placed, with the old mix
                        contact.ResetFriction()
                model.reset(1.0)
                start, scale = REST_ENERGY, 0.5 * model.cart.mass
            fractions = []
            for step in range(1, 101):
                for _ in range(substeps):
                    model.world.Step(DT / substeps, VELOCITY_ITERATIONS, POSITION_ITERATIONS)
                if step in (1, 20, 100):
                    fractions.append(f"{(model.energy() - start) / scale:.3f}")
            cells.append(" / ".join(fractions))
        lines.append(f"| {name} | {' | '.join(cells)} |")
    return lines


def fit_section(episodes: int) -> list[str]:
    lines = ["", "### The proposed parameters, fitted", "",
             "Mountain car, rlgen -v1 with a drag `damping * m * speed` along the track (x'' gains "
             "`- damping * x_dot`): the root-mean-square x difference to Box2D over part (a)'s 25 replays (mean "
             f"over the replays), and the mean episode length of the hand-solved pump policy over reset seeds 0 to "
             f"{episodes - 1} (Box2D: ", ""]
    pumps = {name: run_policy(name, "pump", episodes) for name in ("box2d-car-rllab", "box2d-car-settled")}
    lines[-2] += (f"{pumps['box2d-car-rllab']['length']:.1f} steps with the rllab reset, "
                  f"{pumps['box2d-car-settled']['length']:.1f} settled).")
    lines += ["| damping (1/s) | RMS x diff (m) | pump: mean steps, reached |", "|---|---|---|"]
    for damping in DAMPING_GRID:
        errors = []
        for start in STARTS:
            for actions in action_sequences(1.0, start).values():
                box2d, bead = car_replay(start, actions, damping=damping)
                errors.append(math.sqrt(float(np.mean((box2d - bead) ** 2))))
        pump = run_policy(f"rlgen-car-damped={damping:g}", "pump", episodes)
        name = "0 (rlgen -v1)" if damping == 0 else f"{damping:g}"
        lines.append(f"| {name} | {np.mean(errors):.4f} | {pump['length']:.1f}, {pump['successes']}/{episodes} |")
    lines += ["", "Cart-pole, rlgen -v1 with a torque `-pole_drag * theta_dot^3` at the pole's joint: the "
              "root-mean-square difference to Box2D of the energy fraction over 500 unforced steps, mean over the "
              "six starts of the table above.", "", "| pole_drag (N m s^3) | RMS energy-fraction diff |", "|---|---|"]
    references = {name: np.array(pole_energy_curve("box2d", state)) for name, state in POLE_STARTS.items()}
    for pole_drag in POLE_DRAG_GRID:
        errors = [math.sqrt(float(np.mean((np.array(pole_energy_curve("dragged", state, pole_drag))
                                           - references[name]) ** 2))) for name, state in POLE_STARTS.items()]
        name = "0 (rlgen -v1)" if pole_drag == 0 else f"{pole_drag:g}"
        lines.append(f"| {name} | {np.mean(errors):.4f} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int, default=200, help="episodes per model and policy (seeds 0..N-1)")
    parser.add_argument("--jobs", type=int, default=1, help="(model, policy) runs at once (processes)")
    parser.add_argument("--out", type=Path, help="also write the report (markdown, the command on top) here")
    args = parser.parse_args()
    lines = []
    if HAVE_RLGEN:
        lines += replay_section() + energy_section() + fit_section(min(args.episodes, 50))
    else:
        lines += ["rlgen (or gymnasium) does not import here: part (a) and rlgen's rows are left out.", ""]
    lines += loss_sources()
    for line in lines:
        print(line, flush=True)
    car = ["box2d-car-rllab", "box2d-car-settled"]
    pole = ["box2d-pole-rllab", "box2d-pole-settled"]
    if HAVE_RLGEN:
        car += ["rlgen-car", f"rlgen-car-damped={PROPOSED_DAMPING:g}"]
        pole += ["rlgen-pole", f"rlgen-pole-drag={PROPOSED_POLE_DRAG:g}"]
    units = [(name, policy) for name in car for policy in (*POLICIES, "pump")]
    units += [(name, policy) for name in pole for policy in POLICIES]
    head = ["", f"## (b) Initial policies, {args.episodes} episodes (reset seeds 0 to {args.episodes - 1})", "",
            "Success: episodes with any reward; farthest progress: the best step of any episode (the median "
            "episode's best in brackets): max x for the car (goal 0.6), max cos(angle) for the pole (reward above "
            "0.8). pump (car only, not an initial policy): full force along the car's velocity, the task solved "
            "by hand. The rlgen rows rerun sparse_thresholds.py's protocol here.", "",
            "| task | model | policy | episodes with reward | earliest reward | farthest progress (median) | "
            "mean episode length |", "|---|---|---|---|---|---|---|"]
    for line in head:
        print(line, flush=True)
    rows = []
    with ProcessPoolExecutor(args.jobs) as pool:
        for row in pool.map(run_policy, *zip(*units, strict=True), [args.episodes] * len(units)):
            rows.append(policy_line(row))
            print(rows[-1], flush=True)
    if args.out is not None:
        command = shlex.join(["python", "benchmarks/vime_box2d_check.py", *sys.argv[1:]])
        args.out.write_text("\n".join([
            "# rlgen's VIME tasks against rllab's Box2D models", "",
            f"`{command}` ({time.strftime('%Y-%m-%d')}; Box2D {Box2D.__version__}, numpy {np.__version__}). "
            "rlgen's calibration to compare (benchmarks/results/sparse_thresholds.md, the same protocol): "
            "SparseMountainCar-v1 uniform 16/200 (first at step 205), ppo-init 47/200 (150), trpo-init 0/200; "
            "SparseCartPoleSwingup-v1 uniform 2/200 (121), ppo-init 0/200, trpo-init 0/200.", "",
            *lines, *head, *rows, ""]))
        print(f"wrote {args.out}", flush=True)


if __name__ == "__main__":
    main()
