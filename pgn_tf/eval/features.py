"""Feature networks for IS / FID / KID: images in [-1, 1] -> (logits, pool features), batched and streamed."""

import numpy as np
import tensorflow as tf


class FeatureNet:
    """A classifier seen through its logits and penultimate features.

    Args:
      name: what the scores are labelled with ("inception", "digits_classifier").
      fn: images [N, S, S, 3] float32 in [-1, 1] -> dict with "logits" [N, K]
        and "pool_3" [N, D] (any trailing 1x1 dimensions are flattened).
      image_size: S; inputs of another size are resized bilinearly first, as
        TF-GAN's CIFAR example does before Inception.
      batch_size: images per call.
    """

    def __init__(self, name, fn, image_size, batch_size=100):
        self.name = name
        self.image_size = int(image_size)
        self.batch_size = int(batch_size)
        self._fn = fn
        self._run = tf.function(self._forward, reduce_retracing=True)

    def _forward(self, images):
        images = tf.cast(images, tf.float32)  # a float64 run's samples too
        if images.shape[1] != self.image_size or images.shape[2] != self.image_size:
            images = tf.image.resize(images, (self.image_size, self.image_size), method="bilinear")
        out = self._fn(images)
        n = tf.shape(images)[0]
        return tf.reshape(out["logits"], (n, -1)), tf.reshape(out["pool_3"], (n, -1))

    def __call__(self, images):
        """images [N, H, W, 3] in [-1, 1] -> (logits [N, K], pool [N, D]) as float32 numpy arrays."""
        logits, pool = [], []
        for i in range(0, len(images), self.batch_size):
            lg, pl = self._run(images[i : i + self.batch_size])
            logits.append(lg.numpy())
            pool.append(pl.numpy())
        return np.concatenate(logits), np.concatenate(pool)

    def stream(self, batches, num_images):
        """Runs batches (an iterable of [B, H, W, 3] arrays in [-1, 1]) until num_images; keeps only the outputs."""
        logits, pool, seen = [], [], 0
        for batch in batches:
            batch = batch[: num_images - seen]
            lg, pl = self(np.asarray(batch))
            logits.append(lg)
            pool.append(pl)
            seen += len(batch)
            if seen >= num_images:
                break
        if seen < num_images:
            raise ValueError(f"the image stream ended after {seen} of {num_images} images.")
        return np.concatenate(logits), np.concatenate(pool)
