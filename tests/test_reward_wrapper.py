"""The reward-wrapper contract (rlgen.reward_wrapper): the ring buffer, the recorder, the callback check."""

import numpy as np
import pytest
import torch

from rlgen.exploration.rollout_bonus import standardisation
from rlgen.reward_wrapper import TransitionRing


def test_ring_keeps_integer_observations_as_they_are_and_reads_the_old_layout():
    rng = np.random.default_rng(0)
    frames, next_frames = rng.integers(0, 256, (5, 6)), rng.integers(0, 256, (5, 6))
    actions = rng.normal(size=(5, 2)).astype(np.float32)
    inputs = np.hstack([frames, actions]).astype(np.float32)
    pool = TransitionRing(4, 6, 2, obs_dtype=np.uint8)
    pool.add_inputs(inputs, next_frames.astype(np.float32))  # 5 rows into 4 places: the first one makes way
    assert pool.obs.dtype == np.uint8 and pool.obs.nbytes == 4 * 6 and pool.size == 4
    rows_in, rows_out = pool.rows()
    assert rows_in.dtype == np.float32
    assert sorted(map(tuple, rows_in)) == sorted(map(tuple, inputs[1:]))  # exact: the frames were bytes
    assert sorted(map(tuple, rows_out)) == sorted(map(tuple, next_frames[1:].astype(np.float32)))
    state = pool.state()
    assert state["obs"].dtype == torch.uint8 and state["actions"].dtype == torch.float32
    # a state saved before observations and actions were kept apart: float32 [s, a] and s' rows
    old = {"inputs": torch.from_numpy(inputs[:3]), "targets": torch.from_numpy(next_frames[:3].astype(np.float32)),
           "cursor": 3}
    other = TransitionRing(4, 6, 2, obs_dtype=np.uint8)
    other.load(old)
    np.testing.assert_array_equal(other.rows()[0], inputs[:3])
    assert other.cursor == 3
    with pytest.raises(ValueError, match="observation width"):
        TransitionRing(4, 5, 2).load(old)


def test_ring_loaded_into_another_capacity_keeps_the_newest_rows_in_order():
    def filled(capacity, n):
        pool = TransitionRing(capacity, 1, 1)
        values = np.arange(n, dtype=np.float32)[:, None]
        pool.add_inputs(np.hstack([values, values]), values)
        return pool

    saved = filled(10, 23).state()  # wrapped: holds 13..22, the oldest (13) at the cursor
    new_rows = (np.full((2, 2), 99, np.float32), np.full((2, 1), 99, np.float32))
    larger = TransitionRing(100, 1, 1)
    larger.load(saved)
    assert larger.rows()[1][:, 0].tolist() == list(range(13, 23))
    larger.add_inputs(*new_rows)  # room to spare: nothing held is overwritten and no empty row counts
    assert larger.rows()[1][:, 0].tolist() == [*range(13, 23), 99, 99]
    smaller = TransitionRing(4, 1, 1)
    smaller.load(saved)
    assert smaller.rows()[1][:, 0].tolist() == [19, 20, 21, 22]  # the newest that fit
    smaller.add_inputs(*new_rows)  # the oldest of them make way
    assert smaller.rows()[1][:, 0].tolist() == [99, 99, 21, 22]
    same = TransitionRing(10, 1, 1)
    same.load(saved)  # the same capacity: rows and cursor exactly as they were
    np.testing.assert_array_equal(same.next_obs, filled(10, 23).next_obs)
    assert same.cursor == 3


def test_ring_statistics_in_blocks_match_the_whole_pool_and_bytes_stay_bytes():
    rng = np.random.default_rng(1)
    pool = TransitionRing(1000, 3, 2)
    pool.add_inputs(rng.normal(5, 3, (700, 5)).astype(np.float32), rng.normal(-2, 0.5, (700, 3)).astype(np.float32))
    whole = standardisation(*pool.rows())
    blocks = pool.statistics(block=64)
    for key, value in whole.items():
        np.testing.assert_allclose(blocks[key], value, rtol=1e-5, atol=1e-6)
    frames = TransitionRing(10, 2, 1, obs_dtype=np.uint8)
    with pytest.raises(ValueError, match="not uint8 values.*-3 to 256"):
        frames.add_inputs(np.array([[-3.0, 256.0, 0.5]], np.float32), np.array([[1.0, 2.0]], np.float32))
    assert TransitionRing(10, 2, 1, obs_dtype=np.int64).obs_dtype == np.float32  # no saving over float32


def test_ring_keeps_the_latest_rows_across_the_wrap():
    buffer = TransitionRing(5, 2, (1,))
    rows = np.arange(14, dtype=np.float32)
    for start in range(0, 14, 3):  # 3 rows a step into 5 slots: every other step wraps
        chunk = rows[start:start + 3]
        buffer.add(np.stack([chunk, -chunk], 1), chunk[:, None] * 10, np.stack([chunk + 1, chunk], 1))
    obs, acts, next_obs = buffer.contents()
    assert buffer.size == 5 and buffer.cursor == 14 % 5
    # slot i holds the latest row r with r % 5 == i: rows 9..13
    expected = np.array([10, 11, 12, 13, 9], dtype=np.float32)
    np.testing.assert_array_equal(obs, np.stack([expected, -expected], 1))
    np.testing.assert_array_equal(acts[:, 0], expected * 10)
    np.testing.assert_array_equal(next_obs[:, 0], expected + 1)
