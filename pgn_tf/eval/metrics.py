"""IS, FID and KID from classifier outputs, through TF-GAN's evaluator functions.

Inputs are logits [N, classes] or activations [N, D] (numpy or tensors);
results are Python floats. The arithmetic is TF-GAN's
(`classifier_score_from_logits`, `frechet_classifier_distance_from_activations`,
`kernel_classifier_distance_and_std_from_activations`, all in float64);
this module only splits, converts and adds FID from precomputed statistics.
"""

import numpy as np
import tensorflow as tf

from pgn_tf.eval.tfgan import classifier_metrics as cm


def inception_score_from_logits(logits, splits=10):
    """Inception Score as the paper reports it: mean and std of exp(E KL(p(y|x) || p(y))) over `splits` splits.

    Args:
      logits: [N, classes]; N >= splits. The splits are consecutive (as
        pytorch_gan_metrics and the original code take them).

    Returns:
      (mean, std) over the splits (std with ddof 0, as numpy's default).
    """
    logits = np.asarray(logits, np.float64)
    if logits.ndim != 2 or len(logits) < splits:
        raise ValueError(f"need logits [N >= {splits}, classes], got shape {logits.shape}.")
    scores = [float(cm.classifier_score_from_logits(tf.constant(part))) for part in np.array_split(logits, splits)]
    return float(np.mean(scores)), float(np.std(scores))


def moments(activations):
    """(mu [D], sigma [D, D]) in float64: the mean and the unbiased covariance, as FID takes them."""
    a = np.asarray(activations, np.float64)
    return a.mean(axis=0), np.cov(a, rowvar=False)


def fid_from_activations(real, fake):
    """Frechet distance between the Gaussians fitted to two activation sets [N, D] and [M, D]."""
    return float(cm.frechet_classifier_distance_from_activations(tf.constant(real), tf.constant(fake)))


def fid_from_stats(mu1, sigma1, mu2, sigma2):
    """||mu1 - mu2||^2 + Tr(sigma1 + sigma2 - 2 (sigma1 sigma2)^(1/2)), with TF-GAN's trace square root."""
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != mu1.shape * 2:
        raise ValueError(
            f"statistics do not match: mu {mu1.shape} / {mu2.shape}, sigma {sigma1.shape} / {sigma2.shape}."
        )
    sqrt_trace = float(cm.trace_sqrt_product(tf.constant(sigma1), tf.constant(sigma2)))
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(sigma1) + np.trace(sigma2) - 2.0 * sqrt_trace)


def kid_from_activations(real, fake, max_block_size=1024):
    """Kernel distance (cubic polynomial kernel, unbiased block estimator) and its standard error.

    Both sets should be in random order (the blocks are consecutive slices).
    The standard error needs at least two blocks (more than max_block_size
    images); with one it is NaN.
    """
    kid, std = cm.kernel_classifier_distance_and_std_from_activations(
        tf.constant(real, tf.float64), tf.constant(fake, tf.float64), max_block_size=max_block_size
    )
    return float(kid), float(std)
