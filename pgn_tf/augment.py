"""Image augmentations applied inside the compiled training step: consistency regularisation's transform and
differentiable augmentation (DiffAugment's policies, applied with a fixed or ADA-adapted probability).

Every transform is a pure function of the images and per-image uniforms drawn
by the loop from its seeded stream (`PGNGAN._random`), so a resumed, an
accumulated or a replicated step augments exactly as a single-device,
uninterrupted one. All are differentiable with respect to the images (the
generator's gradient flows through them) and compile under XLA.
"""

import math

import tensorflow as tf

# DiffAugment's policies (Zhao et al., NeurIPS 2020) and the elementary transforms each applies, in order.
POLICIES = {"color": ("brightness", "saturation", "contrast"), "translation": ("translation",), "cutout": ("cutout",)}
# Uniforms each elementary transform draws per image (its gate, u < p, is one more).
_DRAWS = {"brightness": 1, "saturation": 1, "contrast": 1, "translation": 2, "cutout": 2}
TRANSLATION_RATIO, CUTOUT_RATIO = 0.125, 0.5  # DiffAugment's defaults


def parse_policy(policy):
    """The policy string ("color,translation,cutout", any subset, order kept; "" for none) as a tuple of names.

    Raises:
      ValueError: an unknown or repeated name.
    """
    names = tuple(p.strip() for p in policy.split(",")) if policy.strip() else ()
    unknown = [n for n in names if n not in POLICIES]
    if unknown or len(set(names)) != len(names):
        raise ValueError(f"unknown or repeated policy {unknown or list(names)}")
    return names


def transforms(policy):
    """The elementary transforms of a policy string, in the order they apply."""
    return tuple(t for name in parse_policy(policy) for t in POLICIES[name])


def draws(policy):
    """Uniforms per image that `diff_augment` reads for this policy (each transform's, plus its gate)."""
    return sum(_DRAWS[t] + 1 for t in transforms(policy))


def translate(images, dx, dy, fill):
    """Each image shifted by whole pixels: output pixel (x, y) reads input (x - dx, y - dy); `fill` outside.

    Args:
      images: [N, H, W, C]; dx, dy: int32 [N].
    """
    h, w = images.shape[1], images.shape[2]
    # Gathers, not ImageProjectiveTransform, so that XLA compiles it and the gradient reaches the images.
    cols = tf.range(w)[None, :] - dx[:, None]  # [n, w]
    rows = tf.range(h)[None, :] - dy[:, None]  # [n, h]
    out = tf.gather(images, tf.clip_by_value(rows, 0, h - 1), axis=1, batch_dims=1)
    out = tf.gather(out, tf.clip_by_value(cols, 0, w - 1), axis=2, batch_dims=1)
    inside = ((rows >= 0) & (rows < h))[:, :, None, None] & ((cols >= 0) & (cols < w))[:, None, :, None]
    return tf.where(inside, out, tf.cast(fill, images.dtype))


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
    return translate(images, shift[:, 0], shift[:, 1], fill)


def _per_image(u):
    return u[:, None, None, None]


def brightness(images, u):
    """DiffAugment's rand_brightness: each image plus u - 0.5 (u [N] in [0, 1)), so within +- 0.5 of itself."""
    return images + _per_image(u - 0.5)


def saturation(images, u):
    """DiffAugment's rand_saturation: each pixel's channels' deviation from their mean (over the channels, the
    pixel's grey) scaled by 2u (u [N] in [0, 1))."""
    mean = tf.reduce_mean(images, axis=3, keepdims=True)
    return (images - mean) * _per_image(2.0 * u) + mean


def contrast(images, u):
    """DiffAugment's rand_contrast: each image's deviation from its mean scaled by u + 0.5 (u [N] in [0, 1))."""
    mean = tf.reduce_mean(images, axis=[1, 2, 3], keepdims=True)
    return (images - mean) * _per_image(u + 0.5) + mean


def _extent(size, ratio):
    return int(size * ratio + 0.5)  # DiffAugment's rounding


def translation(images, u, ratio=TRANSLATION_RATIO):
    """DiffAugment's rand_translation: a whole-pixel shift of up to s = int(size * ratio + 0.5) in each direction
    (uniform over -s..s), zero fill (mid-grey in [-1, 1]). u: [N, 2] in [0, 1) (y, x)."""
    shifts = []
    for i, size in enumerate((images.shape[1], images.shape[2])):
        s = _extent(size, ratio)
        shifts.append(tf.minimum(tf.cast(tf.floor(u[:, i] * (2 * s + 1)), tf.int32), 2 * s) - s)
    return translate(images, shifts[1], shifts[0], 0.0)


def cutout(images, u, ratio=CUTOUT_RATIO):
    """DiffAugment's rand_cutout: one box of s = int(size * ratio + 0.5) pixels a side set to zero, its centre
    uniform over size + 1 - s % 2 positions from 0 (DiffAugment's range; the box clipped at the border).
    u: [N, 2] in [0, 1) (y, x)."""
    inside = []
    for i, size in enumerate((images.shape[1], images.shape[2])):
        s = _extent(size, ratio)
        span = size + (1 - s % 2)  # DiffAugment's range of the box's centre
        start = tf.minimum(tf.cast(tf.floor(u[:, i] * span), tf.int32), span - 1)[:, None] - s // 2
        pos = tf.range(size)[None, :]
        inside.append((pos >= start) & (pos < start + s))  # [n, size]
    box = inside[0][:, :, None, None] & inside[1][:, None, :, None]
    return tf.where(box, tf.zeros((), images.dtype), images)


def diff_augment(images, uniforms, policy, p=1.0, translation_ratio=TRANSLATION_RATIO, cutout_ratio=CUTOUT_RATIO):
    """DiffAugment's policy, each elementary transform applied to each image with probability p (ADA's way).

    With p = 1 this is DiffAugment (Zhao et al. 2020) exactly; a transform's
    gate is its own uniform (< p applies it), so p below 1 leaves some images
    and some transforms untouched. Nothing is clipped (neither does
    DiffAugment): colour moves values by at most 0.5 (brightness) and the
    scale factors 2u and u + 0.5.

    Args:
      images: [N, H, W, C] in [-1, 1].
      uniforms: [N, draws(policy)] in [0, 1): per transform in order, its gate then its draws.
      policy: the policy string ("color,translation,cutout", any subset, in order).
      p: the probability (a number or a scalar tensor) that each transform applies.

    Returns:
      [N, H, W, C], differentiable with respect to images.
    """
    p = tf.cast(p, uniforms.dtype)
    u = tf.cast(uniforms, images.dtype)
    column = 0
    for name in transforms(policy):
        gate, draw = uniforms[:, column] < p, u[:, column + 1 : column + 1 + _DRAWS[name]]
        column += 1 + _DRAWS[name]
        if name == "translation":
            out = translation(images, draw, translation_ratio)
        elif name == "cutout":
            out = cutout(images, draw, cutout_ratio)
        else:
            out = {"brightness": brightness, "saturation": saturation, "contrast": contrast}[name](images, draw[:, 0])
        images = tf.where(_per_image(gate), out, images)
    return images


def ada_step(p, r_t, target, images_seen, kimg):
    """ADA's adjustment (Karras et al. 2020): p moves by sign(r_t - target) * images_seen / (kimg * 1000), in [0, 1].

    r_t = E[sign(D(real))] over the images_seen real images since the last
    adjustment (the loop reads sign(D(real_i) - D(fake_i)) under PGN or a
    relativistic loss): near 1 when the critic is sure of every real
    (overfitting), so p rises; below the target, p falls. At this speed p can
    cross [0, 1] in kimg thousand real images.
    """
    return tf.clip_by_value(p + tf.sign(r_t - target) * (images_seen / (kimg * 1000.0)), 0.0, 1.0)


def check_ratio(value):
    """Whether a translation / cutout ratio is in (0, 1)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and 0 < value < 1
