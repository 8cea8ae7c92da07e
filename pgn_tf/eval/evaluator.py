"""Scores a generator: samples in batches -> feature network -> IS / FID / KID / precision ... against a reference."""

import os
import sys

import numpy as np
import tensorflow as tf

from pgn_tf.eval import diversity
from pgn_tf.eval.stats import DIVERSITY, DIVERSITY_IMAGES, METRICS, Reference, StatsError, check_metrics

_LOWER_IS_BETTER = ("FID", "KID")
# What best_by may name: every score, of G or (with "_ema") of EMA-G.
BEST_BY = (*METRICS, *(f"{m}_ema" for m in METRICS))


def direction(name):
    """Which way score `name` (of BEST_BY) improves: "min" for FID and KID, "max" for IS, precision and the rest.

    Raises:
      ValueError: name is not in BEST_BY.
    """
    if name not in BEST_BY:
        raise ValueError(f"best_by must be one of {BEST_BY}, got {name!r}.")
    return "min" if name.removesuffix("_ema") in _LOWER_IS_BETTER else "max"


def generated_batches(gan, ema, batch_size, seed):
    """Endless batches [B, H, W, 3] in [-1, 1] from G (or EMA-G), sampled as the official code does (batch statistics).

    The latents come from their own seeded stream, so evaluating never moves
    the training's random state.
    """
    rng = np.random.default_rng(seed)
    while True:
        z = rng.standard_normal((batch_size, gan.z_dim)).astype(np.float32)
        y = rng.integers(0, gan.num_classes, batch_size).astype(np.int32) if gan.conditional else None
        yield gan.generate(z, y, ema=ema).numpy()


def _saved(batches, folder, limit):
    """The batches, passed on unchanged, with their first `limit` images written to folder/000000.png ... (uint8)."""
    os.makedirs(folder, exist_ok=True)
    written = 0
    for batch in batches:
        for image in batch[: max(limit - written, 0)]:
            pixels = np.clip(np.round((image + 1.0) * 127.5), 0, 255).astype(np.uint8)
            tf.io.write_file(os.path.join(folder, f"{written:06d}.png"), tf.io.encode_png(pixels))
            written += 1
        yield batch


def real_batches(dataset):
    for images, _ in dataset:
        yield images.numpy()


def reference_from_dataset(feature_net, dataset, num_images, seed=0):
    """Reference statistics of the first num_images images of a (training) dataset, k-NN radii included."""
    _, pool = feature_net.stream(real_batches(dataset), num_images)
    return Reference.from_activations(pool, feature_net.name, seed=seed)


class Evaluator:
    """IS / FID / KID, precision / recall, density / coverage of a PGNGAN's G or EMA-G in a feature network's space.

    Each evaluation generates num_images samples once and computes every
    selected metric from their features; precision ... coverage use the
    first diversity_images of them against the reference's real activations
    and their cached k-NN radii (computed here, once, if the reference does
    not hold them), so an evaluation costs one pass over the fakes.

    Args:
      feature_net: a features.FeatureNet (Inception or the digits classifier).
      reference: stats.Reference of the real data in the same feature space.
      num_images: samples per evaluation (50,000 in the paper).
      batch_size: generator batch (the official code uses batch_size_G).
      seed: seeds the evaluation latents (the same every time, so runs compare).
      metrics: the selection of stats.METRICS to compute (default all).
      diversity_images: generated samples scored for precision ... coverage
        (10,000 as in the papers; at most num_images).
      k_pr, k_dc: neighbour ranks of precision / recall (3) and density /
        coverage (5).

    Raises:
      StatsError: the reference was made with another feature network.
      ValueError: an unknown metric name.
    """

    def __init__(
        self,
        feature_net,
        reference,
        num_images,
        batch_size,
        seed=0,
        metrics=METRICS,
        diversity_images=DIVERSITY_IMAGES,
        k_pr=diversity.K_PRECISION_RECALL,
        k_dc=diversity.K_DENSITY_COVERAGE,
    ):
        if reference.feature_net and reference.feature_net != feature_net.name:
            raise StatsError(
                f"the FID statistics were made with {reference.feature_net}, not {feature_net.name}; "
                "use statistics from the same network."
            )
        self.feature_net = feature_net
        self.reference = reference
        self.num_images = int(num_images)
        self.batch_size = int(batch_size)
        self.seed = seed
        self.metrics = check_metrics(metrics)
        self.diversity_images = int(diversity_images)
        self.k_pr, self.k_dc = int(k_pr), int(k_dc)
        # The real radii now rather than inside the first evaluation, which then times only what every one costs.
        omitted = self.omitted()
        for names, k in ((("precision", "recall"), self.k_pr), (("density", "coverage"), self.k_dc)):
            if any(m in self.metrics and m not in omitted for m in names):
                reference.knn_radii(k)

    def omitted(self):
        """{metric: reason} of the selected metrics this reference cannot give (e.g. no real activations)."""
        why = self.reference.omitted(self.metrics, self.k_pr, self.k_dc)
        if "recall" in self.metrics and min(self.num_images, self.diversity_images) <= self.k_pr:
            why["recall"] = f"the fake k-NN balls (k={self.k_pr}) need more than {self.k_pr} generated samples"
        return why

    def available(self):
        """The selected metrics an evaluation reports (what best_by may name, with or without "_ema")."""
        omitted = self.omitted()
        return tuple(m for m in self.metrics if m not in omitted)

    def __call__(self, gan, ema, save_images=None):
        """Scores of G (ema=False) or EMA-G; save_images: a new folder for the scored samples as PNG files.

        Returns:
          {"IS", "IS_std", "FID", "KID", "KID_std", "precision", "recall",
          "density", "coverage"} as selected and available (floats), plus
          `described()`'s keys, "diversity_images" (when one of the
          last four is selected) and "omitted": {metric: reason} for
          selected metrics the reference cannot give.
        """
        batches = generated_batches(gan, ema, self.batch_size, self.seed)
        if save_images:
            batches = _saved(batches, save_images + ".partial", self.num_images)
        logits, pool = self.feature_net.stream(batches, self.num_images)
        if save_images:
            os.replace(save_images + ".partial", save_images)  # the folder appears once it holds them all
        scores = self.reference.scores(
            logits, pool, metrics=self.metrics, diversity_images=self.diversity_images, k_pr=self.k_pr, k_dc=self.k_dc
        )
        extra = self.described()
        if set(DIVERSITY) & set(self.metrics):
            extra["diversity_images"] = min(self.num_images, self.diversity_images)
        return {**scores, **extra}

    def described(self):
        """What scores its results: {"num_images", "feature_net"} and, for a trained classifier (the digits and
        MNIST classifiers), "feature_net_fingerprint", its weights' fingerprint: which classifier counted them."""
        described = {"num_images": self.num_images, "feature_net": self.feature_net.name}
        if getattr(self.feature_net, "fingerprint", None):
            described["feature_net_fingerprint"] = self.feature_net.fingerprint
        return described


def for_run(config, workdir, num_images=None, fid_stats=None, feature_fn=None):
    """The Evaluator of a run (a `config.RunConfig` trained in workdir): its feature network and reference.

    The reference is, in order: `fid_stats` (or the config's), else
    DIR/fid_stats.<feature net>.npz, else made from the first num_images
    training images and saved there. num_images and feature_fn default to
    the config's.
    """
    loop, num_images = config.loop, int(num_images or config.num_images)
    feature_net = (feature_fn or config.feature_fn)()
    path = fid_stats or config.fid_stats
    if path:
        reference = Reference.load(path)
    else:
        path = os.path.join(workdir, f"fid_stats.{feature_net.name}.npz")
        if os.path.isfile(path):
            reference = Reference.load(path)
        else:
            print(f"Computing reference statistics of {num_images} training images -> {path}", file=sys.stderr)
            dataset = config.dataset_fn(batch_size=loop.batch_size_G, seed=loop.seed, start_step=0)
            reference = reference_from_dataset(feature_net, dataset, num_images, loop.seed)
            reference.save(path)
    return Evaluator(feature_net, reference, num_images, loop.batch_size_G, loop.seed, metrics=config.metrics)
