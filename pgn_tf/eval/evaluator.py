"""Scores a generator: num_images samples in batches -> feature network -> IS / FID / KID against a reference."""

import numpy as np

from pgn_tf.eval.stats import Reference, StatsError


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


def real_batches(dataset):
    for images, _ in dataset:
        yield images.numpy()


def reference_from_dataset(feature_net, dataset, num_images, seed=0):
    """Reference statistics of the first num_images images of a (training) dataset."""
    _, pool = feature_net.stream(real_batches(dataset), num_images)
    return Reference.from_activations(pool, feature_net.name, seed=seed)


class Evaluator:
    """IS / FID / KID of a PGNGAN's G or EMA-G in a feature network's space.

    Args:
      feature_net: a features.FeatureNet (Inception or the digits classifier).
      reference: stats.Reference of the real data in the same feature space.
      num_images: samples per evaluation (50,000 in the paper).
      batch_size: generator batch (the official code uses batch_size_G).
      seed: seeds the evaluation latents (the same every time, so runs compare).
    """

    def __init__(self, feature_net, reference, num_images, batch_size, seed=0):
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

    def __call__(self, gan, ema):
        """{"IS", "IS_std", "FID"[, "KID", "KID_std"], "num_images", "feature_net"} of G (ema=False) or EMA-G."""
        batches = generated_batches(gan, ema, self.batch_size, self.seed)
        logits, pool = self.feature_net.stream(batches, self.num_images)
        scores = self.reference.scores(logits, pool)
        return {**scores, "num_images": self.num_images, "feature_net": self.feature_net.name}
