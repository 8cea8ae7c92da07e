"""Precision / recall and density / coverage: against a brute-force numpy reading of the definitions, and known cases."""

import numpy as np
import pytest

from pgn_tf.eval import diversity


def _brute_force(real, fake, k_pr, k_dc):
    """The definitions, literally: every pairwise squared distance in float64, closed balls, self excluded by index.

    Squared distances decide exactly what distances decide (sqrt is monotone)
    and are exact for integer features, so ties are tested as ties.
    """
    real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    sq = lambda a, b: ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)

    def radii2(x, k):
        d = sq(x, x)
        np.fill_diagonal(d, np.inf)  # itself excluded, its duplicates not
        return np.sort(d, axis=1)[:, k - 1]

    fr = sq(fake, real)  # [M, N]
    in_pr, in_dc = fr <= radii2(real, k_pr)[None, :], fr <= radii2(real, k_dc)[None, :]
    return {
        "precision": in_pr.any(axis=1).mean(),
        "recall": (fr <= radii2(fake, k_pr)[:, None]).any(axis=0).mean(),
        "density": in_dc.sum() / (k_dc * len(fake)),
        "coverage": in_dc.any(axis=0).mean(),
    }, {k: np.sqrt(radii2(real, k)) for k in (k_pr, k_dc)}


def _features(kind, n, m, seed):
    rng = np.random.default_rng(seed)
    if kind == "gaussian":
        return rng.normal(size=(n, 12)), rng.normal(size=(m, 12)) * 1.2 + 0.3
    # 27 possible points for n + m samples: many exact duplicates (radii of 0) and exact ties at every radius.
    real = rng.integers(0, 3, (n, 3))
    return real, np.concatenate([real[: m // 3], rng.integers(0, 3, (m - m // 3, 3))])


@pytest.mark.parametrize("kind", ["gaussian", "integer ties"])
@pytest.mark.parametrize("k_pr, k_dc", [(1, 2), (3, 5), (7, 4)])
@pytest.mark.parametrize("n, m", [(157, 203), (90, 41)])
def test_matches_brute_force(kind, k_pr, k_dc, n, m):
    real, fake = _features(kind, n, m, seed=n + k_pr)
    expected, radii = _brute_force(real, fake, k_pr, k_dc)
    got = diversity.scores(real, fake, k_pr=k_pr, k_dc=k_dc, chunk_size=32)  # ragged blocks on both axes
    assert got.keys() == expected.keys()
    for name in expected:
        assert got[name] == pytest.approx(expected[name], rel=1e-12, abs=0), name
    for k, r in radii.items():
        np.testing.assert_allclose(diversity.knn_radii(real, k, chunk_size=32), r, rtol=1e-5, atol=1e-6)
    if kind == "integer ties":
        assert (radii[k_pr] == 0).any() or k_pr > 3  # the duplicates are really exercised
        assert diversity.knn_radii(real, 1, chunk_size=32).min() == 0  # exactly 0, not rounding noise
    pr = diversity.precision_recall(real, fake, k_pr, chunk_size=32)
    dc = diversity.density_coverage(real, fake, k_dc, real_radii=radii[k_dc], chunk_size=32)
    assert pr == (got["precision"], got["recall"]) and dc == (got["density"], got["coverage"])


def test_identical_sets_and_one_distribution():
    # On a 2^-8 grid every squared distance is exact in float32, so the count below is exact on any CPU; with
    # unrounded Gaussians one boundary pair in 1,200 can land an ulp outside its ball on one CPU and not another.
    x = np.round(np.random.default_rng(0).normal(size=(400, 10)) * 256) / 256
    d2 = ((x[:, None] - x[None]) ** 2).sum(-1) + np.diag(np.full(len(x), np.inf))
    d2.sort(axis=1)
    assert (d2[:, 2] < d2[:, 3]).all() and (d2[:, 4] < d2[:, 5]).all()  # no ties at the k-th neighbour
    for k in (3, 5):
        s = diversity.scores(x, x, k_pr=k, k_dc=k, chunk_size=128)
        assert s["precision"] == s["recall"] == s["coverage"] == 1.0
        # Each real ball holds its own copy and its k neighbours: density (k + 1) / k exactly for a set with itself.
        assert s["density"] == pytest.approx((k + 1) / k, rel=1e-12)
    rng = np.random.default_rng(1)
    s = diversity.scores(rng.normal(size=(2000, 8)), rng.normal(size=(2000, 8)))
    assert s["density"] == pytest.approx(1.0, abs=0.06)  # two samples of one distribution: E[density] = 1
    assert min(s["precision"], s["recall"], s["coverage"]) > 0.85


def test_far_apart_clusters_score_zero():
    rng = np.random.default_rng(2)
    s = diversity.scores(rng.normal(size=(300, 8)), rng.normal(size=(200, 8)) + 100.0, chunk_size=64)
    assert s == {"precision": 0.0, "recall": 0.0, "density": 0.0, "coverage": 0.0}


def test_dropping_half_of_the_modes_halves_recall_and_coverage():
    rng = np.random.default_rng(3)
    angles = np.arange(10) * 2 * np.pi / 10
    centers = 100.0 * np.stack([np.cos(angles), np.sin(angles)], axis=1)  # neighbours 62 apart, spread 1
    real = centers[np.arange(2000) % 10] + rng.normal(size=(2000, 2))
    fake = centers[np.arange(2000) % 5] + rng.normal(size=(2000, 2))  # modes 5..9 dropped
    s = diversity.scores(real, fake, chunk_size=512)
    assert s["recall"] == pytest.approx(0.5, abs=0.03) and s["coverage"] == pytest.approx(0.5, abs=0.03)
    assert s["precision"] > 0.95 and s["density"] == pytest.approx(1.0, abs=0.1)


def test_chunk_size_does_not_change_the_result():
    rng = np.random.default_rng(4)
    real, fake = rng.normal(size=(150, 20)), rng.normal(size=(121, 20)) + 0.2
    sizes = (7, 32, 100, 4096)  # ragged, even, one block on the diagonal and one off it, everything at once
    results = [diversity.scores(real, fake, chunk_size=c) for c in sizes]
    assert all(r == results[0] for r in results[1:])
    radii = [diversity.knn_radii(real, 3, chunk_size=c) for c in sizes]
    for r in radii[1:]:
        np.testing.assert_allclose(r, radii[0], rtol=1e-6)


def test_bad_inputs_are_refused():
    x = np.zeros((5, 3))
    with pytest.raises(ValueError, match="more than k samples"):
        diversity.knn_radii(x, 5)
    with pytest.raises(ValueError, match="dimensions"):
        diversity.scores(np.zeros((10, 3)), np.zeros((10, 4)))
    with pytest.raises(ValueError, match="radii have shape"):
        diversity.scores(np.zeros((10, 3)), np.zeros((10, 3)), real_radii_pr=np.zeros(9))
    with pytest.raises(ValueError, match="features"):
        diversity.knn_radii(np.zeros(10), 1)
