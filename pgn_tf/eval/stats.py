"""Reference statistics of real images (.npz with mu, sigma and optionally activations) and the scores against them."""

import os

import numpy as np

from pgn_tf.eval import metrics

KID_IMAGES = 10_000  # real activations kept for KID


class StatsError(ValueError):
    """A reference-statistics file that is missing or malformed."""


class Reference:
    """Real-data statistics in a feature space: mu [D], sigma [D, D], optionally activations [M, D] for KID."""

    def __init__(self, mu, sigma, activations=None, feature_net=None):
        self.mu = np.asarray(mu, np.float64)
        self.sigma = np.asarray(sigma, np.float64)
        self.activations = None if activations is None else np.asarray(activations, np.float32)
        self.feature_net = feature_net

    @classmethod
    def from_activations(cls, pool, feature_net=None, kid_images=KID_IMAGES, seed=0):
        mu, sigma = metrics.moments(pool)
        keep = np.random.default_rng(seed).permutation(len(pool))[:kid_images] if kid_images else []
        return cls(mu, sigma, pool[np.sort(keep)] if len(keep) else None, feature_net)

    def save(self, path):
        """Writes an npz with the official statistics layout (mu, sigma) plus activations and feature_net; atomic."""
        extra = {} if self.activations is None else {"activations": self.activations}
        if self.feature_net:
            extra["feature_net"] = np.array(self.feature_net)
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        tmp = path + ".tmp.npz"
        np.savez(tmp, mu=self.mu, sigma=self.sigma, **extra)
        os.replace(tmp, path)

    @classmethod
    def load(cls, path):
        """Reads our npz or the official code's (pytorch_gan_metrics: mu, sigma)."""
        try:
            with np.load(path) as f:
                act = f.get("activations")
                net = str(f["feature_net"]) if "feature_net" in f else None
                ref = cls(f["mu"], f["sigma"], act, net)
        except (OSError, ValueError, KeyError) as e:
            raise StatsError(f"cannot read FID statistics {path} ({e}); make them with tools/compute_fid_stats.py.")
        if ref.mu.ndim != 1 or ref.sigma.shape != ref.mu.shape * 2:
            raise StatsError(
                f"FID statistics {path} have mu {ref.mu.shape} and sigma {ref.sigma.shape}; expected [D], [D, D]."
            )
        return ref

    def scores(self, logits, pool, splits=10):
        """IS (mean, std), FID and, with real activations, KID (mean, std) of generated outputs."""
        if pool.shape[1] != len(self.mu):
            raise StatsError(f"the reference has {len(self.mu)} features but the network gives {pool.shape[1]}.")
        is_mean, is_std = metrics.inception_score_from_logits(logits, splits)
        result = {
            "IS": is_mean,
            "IS_std": is_std,
            "FID": metrics.fid_from_stats(self.mu, self.sigma, *metrics.moments(pool)),
        }
        if self.activations is not None:
            result["KID"], kid_std = metrics.kid_from_activations(self.activations, pool)
            if np.isfinite(kid_std):  # undefined with a single block (few images)
                result["KID_std"] = kid_std
        return result
