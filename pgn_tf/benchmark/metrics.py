"""Mode-collapse metrics: modes covered, high-quality fraction and KL to uniform (2D mixtures, stacked digits)."""

import numpy as np


def kl_to_uniform(counts):
    """KL(p || uniform) of a histogram over K bins (natural log); None when it is empty."""
    counts = np.asarray(counts, np.float64)
    total = counts.sum()
    if total == 0:
        return None
    p = counts[counts > 0] / total
    return float(np.sum(p * np.log(p * len(counts))))


def mixture_metrics(samples, means, std):
    """The 2D-mixture protocol (VEEGAN / PacGAN / Unrolled GAN).

    A sample is high quality if it lies within 3 std of its nearest mean;
    `modes` counts the means that are the nearest mean of at least one
    high-quality sample; `hq` is the high-quality fraction; `kl` is
    KL(p || uniform) of the high-quality samples' histogram over the means.

    Args:
      samples: [N, 2]; means: [K, 2]; std: the mixture's standard deviation.

    Returns:
      {"modes": int, "hq": float, "kl": float or None}.
    """
    samples, means = np.asarray(samples, np.float64), np.asarray(means, np.float64)
    dist = np.linalg.norm(samples[:, None, :] - means[None, :, :], axis=-1)  # [N, K]
    nearest = np.argmin(dist, axis=1)
    good = dist[np.arange(len(samples)), nearest] <= 3.0 * std
    counts = np.bincount(nearest[good], minlength=len(means))
    return {"modes": int(np.sum(counts > 0)), "hq": float(np.mean(good)), "kl": kl_to_uniform(counts)}


def embedded_metrics(samples, means, std, q):
    """A 2D mixture embedded in D dimensions by q ([2, D], orthonormal rows), scored both ways.

    modes / hq / kl: in the plane (samples projected back, x q^T), as in 2D;
    modes_full / hq_full / kl_full: in all D dimensions, against the embedded
    means (within 3 std counting the off-plane part); off_plane: the median
    distance of a sample from the plane (G may find the modes in the plane
    long before it stops putting variance in the other D - 2 directions).
    """
    samples, q = np.asarray(samples, np.float64), np.asarray(q, np.float64)
    plane = samples @ q.T
    full = mixture_metrics(samples, np.asarray(means, np.float64) @ q, std)
    off = np.linalg.norm(samples - plane @ q, axis=1)
    return {
        **mixture_metrics(plane, means, std),
        **{f"{k}_full": v for k, v in full.items()},
        "off_plane": float(np.median(off)),
    }


STACKED_MODES = 1000  # digit triples


def stacked_metrics(triples, num_modes=STACKED_MODES):
    """Stacked digits: `modes` = distinct triples seen; `kl` = KL(p || uniform over the 1,000 triples).

    triples: [N] ints in [0, 1000) (100 * red digit + 10 * green + blue).
    """
    counts = np.bincount(np.asarray(triples, np.int64), minlength=num_modes)
    return {"modes": int(np.sum(counts > 0)), "kl": kl_to_uniform(counts)}
