"""Metrics: likelihood arithmetic, errors and cluster matching, and the classifier-based sample scores."""

import math

import numpy as np
import pytest
import torch

from rlgen.data import load_dataset
from rlgen.generative.metrics import (
    SampleScorer,
    best_matching_accuracy,
    bits_per_dim,
    frechet_distance_of_features,
    nll_nats,
    semi_supervised_error,
)


def test_bits_per_dim_arithmetic():
    # uniform over 256 levels on 784 pixels: 784 ln 256 nats = 8 bits per dim
    assert bits_per_dim(784 * math.log(256), 784) == pytest.approx(8.0)
    assert bits_per_dim(torch.tensor([2 * math.log(2), 4 * math.log(2)]), 3) == pytest.approx(1.0)
    assert nll_nats(torch.tensor([-1.0, -3.0])) == pytest.approx(2.0)
    with pytest.raises(ValueError, match="n_dims"):
        bits_per_dim(1.0, 0)


def test_semi_supervised_error():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [3.0, 1.0], [0.0, 5.0]])
    assert semi_supervised_error(logits, torch.tensor([0, 1, 1, 1])) == pytest.approx(0.25)
    with pytest.raises(ValueError, match="labelled"):
        semi_supervised_error(logits, torch.tensor([0, -1, 1, 1]))


def test_best_matching_accuracy():
    labels = np.random.default_rng(0).integers(0, 10, size=500)
    renamed = np.random.default_rng(1).permutation(10)[labels]  # same partition, other names
    assert best_matching_accuracy(renamed, labels) == 1.0
    assert best_matching_accuracy(torch.as_tensor(renamed), torch.as_tensor(labels)) == 1.0
    # one cluster for everything matches only the largest class
    assert best_matching_accuracy(np.zeros(500, int), labels) == pytest.approx(np.bincount(labels).max() / 500)
    # two clusters merged into one label cannot both be matched to it: one-to-one
    assert best_matching_accuracy(np.array([0, 1, 2, 2]), np.array([0, 0, 1, 1])) == pytest.approx(0.75)


def test_frechet_distance_of_gaussians():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(20000, 3))
    b = rng.normal(size=(20000, 3)) * 2.0 + 1.0
    # ||mu||^2 = 3; Tr(I + 4I - 2 * 2I) = 3
    assert frechet_distance_of_features(a, b) == pytest.approx(6.0, rel=0.03)
    assert abs(frechet_distance_of_features(a, a)) < 1e-8


@pytest.fixture(scope="module")
def scorer_and_data(tmp_path_factory):
    torch.manual_seed(0)
    train, test = load_dataset("digits"), load_dataset("digits", "test")
    cache = tmp_path_factory.mktemp("scorer") / "digits_scorer.pt"
    return SampleScorer.fit(train, epochs=6, cache=cache), train, test, cache


def test_scorer_prefers_real_images_to_noise_and_collapse(scorer_and_data):
    scorer, train, test, _ = scorer_and_data
    assert scorer.accuracy(test) > 0.9
    noise = torch.rand(len(test), *test.shape)
    collapsed = test.x[:1].expand(len(test), -1, -1, -1)
    real_is, noise_is, collapsed_is = (scorer.inception_like_score(s) for s in (test.x, noise, collapsed))
    assert real_is > 6.0 and real_is > noise_is and collapsed_is == pytest.approx(1.0, abs=1e-6)
    real_fd, noise_fd, collapsed_fd = (scorer.frechet_distance(s, train) for s in (test.x, noise, collapsed))
    assert real_fd < noise_fd and real_fd < collapsed_fd


def test_scorer_cache_round_trip_and_shape_check(scorer_and_data):
    scorer, train, test, cache = scorer_and_data
    assert cache.is_file()
    loaded = SampleScorer.fit(train, epochs=6, cache=cache)  # loads instead of training again
    assert torch.allclose(loaded.probabilities(test.x[:20]), scorer.probabilities(test.x[:20]))
    with pytest.raises(ValueError, match=r"\(1, 8, 8\)"):
        scorer.inception_like_score(torch.rand(4, 1, 28, 28))


def test_scorer_cache_is_reused_only_for_the_same_fit_and_survives_a_corrupt_file(scorer_and_data, tmp_path,
                                                                                    monkeypatch):
    scorer, train, test, cache = scorer_and_data
    mine = tmp_path / "scorer.pt"
    mine.write_bytes(cache.read_bytes())
    fits = []  # a fit saves what it fitted; a scorer taken from the cache is not saved again
    original_save = SampleScorer.save
    monkeypatch.setattr(SampleScorer, "save", lambda self, *a, **k: fits.append(1) or original_save(self, *a, **k))
    SampleScorer.fit(train, epochs=6, cache=mine)
    assert fits == []  # the same fit: reused
    other = SampleScorer.fit(train, epochs=1, seed=1, cache=mine)  # another seed and length: fitted anew
    assert len(fits) == 1
    again = SampleScorer.fit(train, epochs=1, seed=1, cache=mine)
    assert len(fits) == 1 and torch.allclose(again.probabilities(test.x[:5]), other.probabilities(test.x[:5]))
    mine.write_bytes(b"torn")
    with pytest.warns(UserWarning, match="not a readable sample scorer"):
        SampleScorer.fit(train, epochs=1, cache=mine)
    assert SampleScorer.load(mine).n_classes == 10  # replaced by the new fit
    with pytest.raises(ValueError, match="not a readable sample scorer"):
        SampleScorer.load(tmp_path / "missing.pt")


def test_mode_coverage_counts_the_classes_samples_fall_into(scorer_and_data):
    scorer, _, test, _ = scorer_and_data
    real = scorer.mode_coverage(test.x)
    assert real["modes"] == 10 and real["kl_uniform"] < 0.05 and real["confident"] > 0.9
    # Samples from three digits only: three modes, and a histogram far from uniform.
    three = test.x[torch.isin(test.y, torch.tensor([0, 3, 7]))]
    partial = scorer.mode_coverage(three)
    assert partial["modes"] == 3
    assert partial["kl_uniform"] == pytest.approx(math.log(10 / 3), abs=0.2)  # a few misclassified
    collapsed = scorer.mode_coverage(test.x[:1].expand(200, -1, -1, -1))
    assert collapsed["modes"] == 1 and collapsed["kl_uniform"] == pytest.approx(math.log(10), abs=1e-6)


def test_inception_like_score_by_hand(monkeypatch):
    # exp E_x KL(p(y|x) || p(y)) on class-probability tables worked out by hand
    scorer = SampleScorer((1, 8, 8), n_classes=2)
    x = torch.zeros(2, 1, 8, 8)
    tables = {
        2.0: [[1.0, 0.0], [0.0, 1.0]],  # confident and varied: as many as the classes
        1.0: [[1.0, 0.0], [1.0, 0.0]],  # collapsed onto one class
        math.exp(0.9 * math.log(1.8) + 0.1 * math.log(0.2)): [[0.9, 0.1], [0.1, 0.9]],
    }
    for expected, table in tables.items():
        monkeypatch.setattr(scorer, "probabilities", lambda samples, t=table: torch.tensor(t))
        assert scorer.inception_like_score(x) == pytest.approx(expected, rel=1e-6)
