"""Improved precision / recall (Kynkäänniemi 2019) and density / coverage (Naeem 2020) on feature vectors, exactly.

Every sample x of a set has a k-NN ball B(x, r_k(x)): r_k(x) is the
Euclidean distance from x to its k-th nearest neighbour in the same set,
x itself excluded (by index, so a duplicate of x does count as a neighbour,
at distance 0). All balls are closed: y is inside B(x, r) when
d(y, x) <= r. Kynkäänniemi et al.'s reference code uses <=; the `prdc`
package of Naeem et al. uses <. They differ only on exact ties, and there
the closed ball is the one that keeps the definitions' own promises: the
k-th neighbour that sets the radius lies in its ball, and a set compared
with itself gets precision = recall = coverage = 1 even when duplicates make
a radius 0 (with < such a ball would be empty, not even holding its centre).

Pairwise distances come from chunked float32 matmuls in TensorFlow,
||a||^2 + ||b||^2 - 2 a.b clamped at 0 (rounding can make it slightly
negative) and then square-rooted, one [chunk, chunk] block at a time: never
an N x M matrix, and the same code runs on a GPU. Ties are decided exactly
whenever the squared distances are exact in float32 (e.g. small integer
features); otherwise at float32 resolution, as in any float32
implementation.
"""

import functools

import numpy as np
import tensorflow as tf

CHUNK = 1024  # rows and columns per distance block: 4 MiB of float32
K_PRECISION_RECALL = 3  # Kynkäänniemi et al. 2019
K_DENSITY_COVERAGE = 5  # Naeem et al. 2020

_VEC = tf.TensorSpec([None], tf.float32)
_MAT = tf.TensorSpec([None, None], tf.float32)
_INT = tf.TensorSpec([], tf.int32)


def _as_features(x, name):
    x = np.asarray(x, np.float32)
    if x.ndim != 2 or not len(x):
        raise ValueError(f"{name} must be features [N >= 1, D], got shape {x.shape}.")
    return x


def _sq_norms(x):
    return tf.reduce_sum(tf.square(x), axis=1)


def _distances(a, a_sq, b, b_sq):
    """[n, D], [m, D] (and their squared norms) -> Euclidean distances [n, m], float32, >= 0."""
    d2 = a_sq[:, None] + b_sq[None, :] - 2.0 * tf.matmul(a, b, transpose_b=True)
    return tf.sqrt(tf.maximum(d2, 0.0))


def _merge_smallest(best, d, k):
    """The k smallest of each row of [best | d]; top_k keeps multiplicity, as np.partition does."""
    return -tf.math.top_k(-tf.concat([best, d], axis=1), k, sorted=False).values


@functools.cache
def _self_block(k):
    """A function: block (rows, cols) of a set against itself -> both sides' k smallest so far, self excluded."""

    @tf.function(input_signature=[_MAT, _VEC, _MAT, _VEC, _INT, _INT, _MAT, _MAT])
    def block(a, a_sq, b, b_sq, row0, col0, best_rows, best_cols):
        d = _distances(a, a_sq, b, b_sq)
        rows = row0 + tf.range(tf.shape(a)[0])
        cols = col0 + tf.range(tf.shape(b)[0])
        d = tf.where(rows[:, None] == cols[None, :], tf.constant(np.inf, tf.float32), d)
        return _merge_smallest(best_rows, d, k), _merge_smallest(best_cols, tf.transpose(d), k)

    return block


def knn_radii(features, k, chunk_size=CHUNK):
    """Distance from every sample to its k-th nearest neighbour in the same set, itself excluded.

    Distances are symmetric, so only the blocks on and above the diagonal are
    computed (each feeds its rows and, transposed, its columns): half the
    matmuls of a full pass.

    Args:
      features: [N, D] feature vectors; N > k.
      k: the neighbour rank (3 for precision / recall, 5 for density / coverage).
      chunk_size: rows and columns per distance block (memory chunk_size^2 floats).

    Returns:
      radii [N] float32, >= 0 (0 when x has k or more exact duplicates).

    Raises:
      ValueError: N <= k (the k-th neighbour does not exist), or bad shapes.
    """
    x = _as_features(features, "features")
    k, chunk_size = int(k), int(chunk_size)
    if k < 1 or len(x) <= k:
        raise ValueError(f"the k-th nearest neighbour needs k >= 1 and more than k samples; got k={k}, N={len(x)}.")
    block = _self_block(k)
    xt = tf.constant(x)
    sq = _sq_norms(xt)
    starts = range(0, len(x), chunk_size)
    chunks = [(xt[i : i + chunk_size], sq[i : i + chunk_size]) for i in starts]
    best = [tf.fill((tf.shape(a)[0], k), tf.constant(np.inf, tf.float32)) for a, _ in chunks]
    for bi, i in enumerate(starts):
        for bj in range(bi, len(chunks)):
            # A diagonal block feeds its rows twice with the same distances; the second merge must not add them again.
            cols_best = best[bj] if bj != bi else tf.fill(tf.shape(best[bi]), tf.constant(np.inf, tf.float32))
            best[bi], cols_best = block(*chunks[bi], *chunks[bj], i, starts[bj], best[bi], cols_best)
            if bj != bi:
                best[bj] = cols_best
    # The k-th smallest of the k kept.
    return tf.concat([tf.reduce_max(b, axis=1) for b in best], axis=0).numpy()


@tf.function(input_signature=[_MAT, _VEC, _MAT, _VEC, _VEC, _VEC, _VEC])
def _fake_real_block(fake, fake_sq, real, real_sq, fake_radii, real_radii_pr, real_radii_dc):
    """One [fakes, reals] block: what each side's closed balls hold.

    Returns:
      in_real [fakes] bool (inside some real k_pr-ball: precision),
      balls [fakes] float32 (real k_dc-balls holding the fake: density),
      covered [reals] bool (its k_dc-ball holds a fake: coverage),
      in_fake [reals] bool (inside some fake k_pr-ball: recall).
    """
    d = _distances(fake, fake_sq, real, real_sq)
    in_dc = d <= real_radii_dc[None, :]
    return (
        tf.reduce_any(d <= real_radii_pr[None, :], axis=1),
        tf.reduce_sum(tf.cast(in_dc, tf.float32), axis=1),
        tf.reduce_any(in_dc, axis=0),
        tf.reduce_any(d <= fake_radii[:, None], axis=0),
    )


def scores(
    real,
    fake,
    real_radii_pr=None,
    real_radii_dc=None,
    k_pr=K_PRECISION_RECALL,
    k_dc=K_DENSITY_COVERAGE,
    recall=True,
    chunk_size=CHUNK,
):
    """Precision, recall, density and coverage in one pass over [fake, real] blocks.

    precision = share of fakes inside some real k_pr-ball; recall = share of
    reals inside some fake k_pr-ball (the fakes' own k_pr-NN radii);
    density = (1 / (k_dc M)) x sum over fakes of the number of real
    k_dc-balls holding it (about 1 for two samples of one distribution, can
    exceed 1); coverage = share of reals whose k_dc-ball holds a fake.

    Args:
      real: [N, D] real features; fake: [M, D] generated features.
      real_radii_pr, real_radii_dc: [N] cached `knn_radii(real, k_pr)` and
        `knn_radii(real, k_dc)`; None computes them (one [N, N] pass each).
      k_pr, k_dc: neighbour ranks (3 and 5, as in the papers).
      recall: False skips recall and its [M, M] pass over the fakes' radii.
      chunk_size: rows and columns per distance block.

    Returns:
      {"precision", "recall", "density", "coverage"}: Python floats
      ("recall" only when asked for).
    """
    real, fake = _as_features(real, "real"), _as_features(fake, "fake")
    if real.shape[1] != fake.shape[1]:
        raise ValueError(f"real features have {real.shape[1]} dimensions, fake features {fake.shape[1]}.")
    radii, known = [], {}
    for given, k in ((real_radii_pr, k_pr), (real_radii_dc, k_dc)):
        if given is None:
            given = known[k] if k in known else knn_radii(real, k, chunk_size)
        r = np.asarray(given, np.float32)
        if r.shape != (len(real),):
            raise ValueError(f"real radii have shape {r.shape}, expected ({len(real)},).")
        known[k] = r
        radii.append(tf.constant(r))
    # Without recall the fake balls are never read: radius -1 holds nothing (distances are >= 0).
    fake_radii = knn_radii(fake, k_pr, chunk_size) if recall else -np.ones(len(fake), np.float32)
    real_t, fake_t = tf.constant(real), tf.constant(fake)
    real_sq, fake_sq = _sq_norms(real_t), _sq_norms(fake_t)
    in_real, balls = [], []
    covered = tf.zeros(len(real), tf.bool)
    in_fake = tf.zeros(len(real), tf.bool)
    for i in range(0, len(fake), chunk_size):
        f, f_sq, f_r = fake_t[i : i + chunk_size], fake_sq[i : i + chunk_size], fake_radii[i : i + chunk_size]
        row_in, row_balls, cov, rec = [], 0.0, [], []
        for j in range(0, len(real), chunk_size):
            cols = slice(j, j + chunk_size)
            a, b, c, e = _fake_real_block(f, f_sq, real_t[cols], real_sq[cols], f_r, radii[0][cols], radii[1][cols])
            row_in.append(a)
            row_balls += b
            cov.append(c)
            rec.append(e)
        in_real.append(tf.reduce_any(tf.stack(row_in), axis=0))
        balls.append(row_balls)
        covered = covered | tf.concat(cov, axis=0)
        in_fake = in_fake | tf.concat(rec, axis=0)
    result = {
        "precision": float(np.mean(tf.concat(in_real, axis=0).numpy())),
        "density": float(np.sum(tf.concat(balls, axis=0).numpy(), dtype=np.float64) / (k_dc * len(fake))),
        "coverage": float(np.mean(covered.numpy())),
    }
    if recall:
        result["recall"] = float(np.mean(in_fake.numpy()))
    return result


def precision_recall(real, fake, k=K_PRECISION_RECALL, real_radii=None, chunk_size=CHUNK):
    """Improved precision and recall (Kynkäänniemi et al. 2019), closed k-NN balls.

    A fake is inside the real manifold when d(fake, r) <= r_k(r) for some
    real r; precision is the share of fakes inside it, recall the share of
    reals inside the fake manifold, built the same way from the fakes.

    Args:
      real: [N, D] real features (N > k); fake: [M, D] generated (M > k).
      k: neighbour rank (3 in the paper).
      real_radii: [N] cached `knn_radii(real, k)`, or None to compute them.
      chunk_size: rows and columns per distance block.

    Returns:
      (precision, recall), floats in [0, 1].
    """
    s = scores(real, fake, real_radii, real_radii, k, k, True, chunk_size)
    return s["precision"], s["recall"]


def density_coverage(real, fake, k=K_DENSITY_COVERAGE, real_radii=None, chunk_size=CHUNK):
    """Density and coverage (Naeem et al. 2020), closed k-NN balls around the real samples only.

    density = (1 / (k M)) sum_j sum_i 1[d(fake_j, real_i) <= r_k(real_i)];
    coverage = (1 / N) sum_i 1[min_j d(fake_j, real_i) <= r_k(real_i)].

    Args:
      real: [N, D] real features (N > k); fake: [M, D] generated features.
      k: neighbour rank (5 in the paper).
      real_radii: [N] cached `knn_radii(real, k)`, or None to compute them.
      chunk_size: rows and columns per distance block.

    Returns:
      (density, coverage): density >= 0 (about 1 when fake and real follow
      one distribution), coverage in [0, 1].
    """
    s = scores(real, fake, real_radii, real_radii, k, k, False, chunk_size)
    return s["density"], s["coverage"]
