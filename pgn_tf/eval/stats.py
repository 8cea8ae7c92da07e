"""Reference statistics of real images (.npz: mu, sigma, real activations, their k-NN radii) and scores against them."""

import os
import re

import numpy as np

from pgn_tf.errors import StatsError
from pgn_tf.eval import diversity
from pgn_tf.eval import metrics as tfgan_metrics

KID_IMAGES = 10_000  # real activations kept for KID and precision / recall / density / coverage
DIVERSITY_IMAGES = 10_000  # generated samples scored for precision / recall / density / coverage
METRICS = ("IS", "FID", "KID", "precision", "recall", "density", "coverage")
DIVERSITY = ("precision", "recall", "density", "coverage")
RADII_K = (diversity.K_PRECISION_RECALL, diversity.K_DENSITY_COVERAGE)  # the radii a new reference caches
_RADII_KEY = re.compile(r"^knn_radii_k(\d+)$")


def check_metrics(names):
    """names as a tuple of METRICS entries, or ValueError naming the unknown ones."""
    names = (names,) if isinstance(names, str) else tuple(names)
    unknown = [n for n in names if n not in METRICS]
    if unknown or not names:
        raise ValueError(f"metrics must be a non-empty selection of {METRICS}, got {names}.")
    return names


class Reference:
    """Real-data statistics in a feature space.

    mu [D] and sigma [D, D] for FID; optionally M real activations [M, D]
    (a random subset, KID_IMAGES by default) for KID and the k-NN metrics,
    with `radii` {k: [M] float32}, each real activation's distance to its
    k-th nearest other real activation (`diversity.knn_radii`). Radii not
    stored (an npz made before they were, or another k) are computed from the
    activations on first use and kept on this object, so a run pays for them
    once; `save` writes them. Without activations (the official code's
    mu / sigma layout, or kid_images=0) KID, precision, recall, density and
    coverage are omitted, with the reason in the scores' "omitted".
    """

    def __init__(self, mu, sigma, activations=None, feature_net=None, radii=None):
        self.mu = np.asarray(mu, np.float64)
        self.sigma = np.asarray(sigma, np.float64)
        self.activations = None if activations is None else np.asarray(activations, np.float32)
        self.feature_net = feature_net
        self.radii = {int(k): np.asarray(r, np.float32) for k, r in (radii or {}).items()}

    @classmethod
    def from_activations(cls, pool, feature_net=None, kid_images=KID_IMAGES, seed=0, radii_k=RADII_K):
        """Statistics of real activations pool [N, D]; keeps kid_images of them and their radii for each of radii_k."""
        mu, sigma = tfgan_metrics.moments(pool)
        keep = np.random.default_rng(seed).permutation(len(pool))[:kid_images] if kid_images else []
        ref = cls(mu, sigma, pool[np.sort(keep)] if len(keep) else None, feature_net)
        for k in radii_k:
            if ref.activations is not None and len(ref.activations) > k:
                ref.knn_radii(k)
        return ref

    def knn_radii(self, k, chunk_size=diversity.CHUNK):
        """[M] radii of the real activations for rank k: stored, else computed once and kept."""
        if self.activations is None:
            raise StatsError("the reference has no real activations to measure k-NN radii on.")
        if k not in self.radii:
            self.radii[k] = diversity.knn_radii(self.activations, k, chunk_size)
        return self.radii[k]

    def save(self, path):
        """Writes an npz with the official statistics layout (mu, sigma) plus activations, knn_radii_k<k>, feature_net.

        Atomic: a temporary file renamed into place.
        """
        extra = {} if self.activations is None else {"activations": self.activations}
        extra.update({f"knn_radii_k{k}": r for k, r in sorted(self.radii.items())})
        if self.feature_net:
            extra["feature_net"] = np.array(self.feature_net)
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        tmp = path + ".tmp.npz"
        np.savez(tmp, mu=self.mu, sigma=self.sigma, **extra)
        os.replace(tmp, path)

    @classmethod
    def load(cls, path):
        """Reads our npz (with or without radii) or the official code's (pytorch_gan_metrics: mu, sigma)."""
        try:
            with np.load(path) as f:
                act = f.get("activations")
                net = str(f["feature_net"]) if "feature_net" in f else None
                radii = {int(m.group(1)): f[m.group(0)] for m in map(_RADII_KEY.match, f.files) if m}
                ref = cls(f["mu"], f["sigma"], act, net, radii)
        except (OSError, ValueError, KeyError) as e:
            raise StatsError(f"cannot read FID statistics {path} ({e}); make them with tools/compute_fid_stats.py.")
        if ref.mu.ndim != 1 or ref.sigma.shape != ref.mu.shape * 2:
            raise StatsError(
                f"FID statistics {path} have mu {ref.mu.shape} and sigma {ref.sigma.shape}; expected [D], [D, D]."
            )
        count = None if ref.activations is None else len(ref.activations)
        for k, r in ref.radii.items():
            if r.shape != (count,):
                raise StatsError(
                    f"FID statistics {path} hold k-NN radii (k={k}) of shape {r.shape} for {count} real activations; "
                    "make them again with tools/compute_fid_stats.py."
                )
        return ref

    def omitted(self, wanted=METRICS, k_pr=diversity.K_PRECISION_RECALL, k_dc=diversity.K_DENSITY_COVERAGE):
        """{metric: why it cannot be computed against this reference} for the wanted metrics that cannot."""
        why = {}
        if self.activations is None:
            reason = (
                "the reference keeps no real activations (official mu/sigma layout or kid_images=0); "
                "make it with tools/compute_fid_stats.py"
            )
            why = {m: reason for m in ("KID", *DIVERSITY)}
        else:
            for names, k in ((("precision", "recall"), k_pr), (("density", "coverage"), k_dc)):
                if len(self.activations) <= k:
                    reason = f"the reference keeps {len(self.activations)} real activations; k={k} needs more than {k}"
                    why.update(dict.fromkeys(names, reason))
        return {m: r for m, r in why.items() if m in wanted}

    def scores(
        self,
        logits,
        pool,
        splits=10,
        metrics=METRICS,
        diversity_images=DIVERSITY_IMAGES,
        k_pr=diversity.K_PRECISION_RECALL,
        k_dc=diversity.K_DENSITY_COVERAGE,
    ):
        """Scores of generated outputs logits [M, K] and pool [M, D].

        Args:
          logits, pool: the feature network's outputs on the generated images.
          splits: IS splits.
          metrics: a selection of METRICS ("IS" brings "IS_std",
            "KID" brings "KID_std" when there are two KID blocks or more).
          diversity_images: the first this many of pool are scored for
            precision / recall / density / coverage (the sample is in random
            order); the cost grows with it times the reference's activations.
          k_pr, k_dc: neighbour ranks of precision / recall and density / coverage.

        Returns:
          {name: float} of the wanted metrics that can be computed, plus
          "omitted": {name: reason} when some cannot (see `omitted`).
        """
        wanted = check_metrics(metrics)
        if pool.shape[1] != len(self.mu):
            raise StatsError(f"the reference has {len(self.mu)} features but the network gives {pool.shape[1]}.")
        omitted = self.omitted(wanted, k_pr, k_dc)
        result = {}
        if "IS" in wanted:
            result["IS"], result["IS_std"] = tfgan_metrics.inception_score_from_logits(logits, splits)
        if "FID" in wanted:
            result["FID"] = tfgan_metrics.fid_from_stats(self.mu, self.sigma, *tfgan_metrics.moments(pool))
        if "KID" in wanted and "KID" not in omitted:
            result["KID"], kid_std = tfgan_metrics.kid_from_activations(self.activations, pool)
            if np.isfinite(kid_std):  # undefined with a single block (few images)
                result["KID_std"] = kid_std
        todo = [m for m in DIVERSITY if m in wanted and m not in omitted]
        fake = pool[:diversity_images]
        if "recall" in todo and len(fake) <= k_pr:
            omitted["recall"] = f"{len(fake)} generated samples; the fake k-NN balls (k={k_pr}) need more than {k_pr}"
            todo.remove("recall")
        if todo:
            # diversity.scores reads two sets of radii; a part not wanted reuses the other's and is not reported.
            k1 = k_pr if {"precision", "recall"} & set(todo) else k_dc
            k2 = k_dc if {"density", "coverage"} & set(todo) else k1
            values = diversity.scores(
                self.activations, fake, self.knn_radii(k1), self.knn_radii(k2), k1, k2, recall="recall" in todo
            )
            result.update({m: values[m] for m in todo})
        if omitted:
            result["omitted"] = omitted
        return result
