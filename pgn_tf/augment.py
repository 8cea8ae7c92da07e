"""Image augmentations applied inside the compiled training step: consistency regularisation's transform."""

import tensorflow as tf


def cr_augment(images, uniforms, max_shift=0.2, fill=-1.0):
    """The official consistency-regularisation transform, on device.

    Random horizontal flip, then a random integer translation of up to
    max_shift of the size in each direction; the border is filled with black
    (0 in [0, 1], so -1 here), as torchvision's RandomAffine does.

    Args:
      images: [N, H, W, C] in [-1, 1].
      uniforms: [N, 3] uniform in [0, 1): per image the flip (< 0.5 flips)
        and the x and y shifts.
    """
    h, w = images.shape[1], images.shape[2]
    flip = uniforms[:, 0, None, None, None] < 0.5
    images = tf.where(flip, tf.reverse(images, axis=[2]), images)
    limits = tf.constant([max_shift * w, max_shift * h], uniforms.dtype)
    shift = tf.cast(tf.round(uniforms[:, 1:] * 2.0 * limits - limits), tf.int32)
    # Output pixel (x, y) reads input (x - dx, y - dy); gathers (not ImageProjectiveTransform) so XLA compiles it.
    cols = tf.range(w)[None, :] - shift[:, :1]  # [n, w]
    rows = tf.range(h)[None, :] - shift[:, 1:]  # [n, h]
    out = tf.gather(images, tf.clip_by_value(rows, 0, h - 1), axis=1, batch_dims=1)
    out = tf.gather(out, tf.clip_by_value(cols, 0, w - 1), axis=2, batch_dims=1)
    inside = ((rows >= 0) & (rows < h))[:, :, None, None] & ((cols >= 0) & (cols < w))[:, None, :, None]
    return tf.where(inside, out, tf.cast(fill, images.dtype))
