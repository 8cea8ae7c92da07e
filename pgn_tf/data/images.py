"""One image to one fixed-size uint8 record: channels to RGB, a square crop or resize, antialiased resizing."""

import os

import numpy as np
import tensorflow as tf

from pgn_tf.errors import DataError

CROPS = ("center", "resize", "random")
# What image_folder reads; tf.io.decode_image decodes each (a GIF's first frame).
EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")


def check_size(size, crop, what):
    """Raises DataError unless size is a positive int and crop one of CROPS; what names the binding's prefix."""
    if size is None:
        raise DataError(f"{what}.size is not set; bind it to the size the architecture takes, e.g. {what}.size = 64.")
    if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
        raise DataError(f"{what}.size must be a positive integer, got {size!r}.")
    if crop not in CROPS:
        raise DataError(f"{what}.crop must be one of {CROPS}, got {crop!r}.")


def record_size(size, crop):
    """The stored side: size, or size + size // 8 for "random" (the window moves within the margin)."""
    return size + size // 8 if crop == "random" else size


def to_rgb(image):
    """uint8 [H, W, C] -> [H, W, 3]: grey (C = 1, or 2 with alpha) repeated over RGB, alpha (C = 4) dropped."""
    channels = image.shape[-1]
    if channels == 3:
        return image
    if channels in (1, 2):
        return tf.repeat(image[..., :1], 3, axis=-1)
    if channels == 4:
        return image[..., :3]
    grey = tf.shape(image)[-1] < 3
    return tf.ensure_shape(
        tf.cond(grey, lambda: tf.repeat(image[..., :1], 3, axis=-1), lambda: image[..., :3]), (None, None, 3)
    )


def fit(image, size, crop):
    """uint8 [H, W, C] -> uint8 [R, R, 3], R = record_size(size, crop).

    crop: "center" takes the centred square of side min(H, W) and resizes it; "resize" resizes the whole
    image to a square (the aspect ratio changes, as torchvision's Resize((S, S))); "random" stores the
    centred square at size + size // 8, from which each draw cuts a seeded size x size window.
    Resizing is bilinear with antialiasing, rounded to uint8; an image already R x R is kept as it is.
    """
    image = to_rgb(image)
    if crop != "resize":
        h, w = tf.shape(image)[0], tf.shape(image)[1]
        side = tf.minimum(h, w)
        top, left = (h - side) // 2, (w - side) // 2
        image = image[top : top + side, left : left + side]
    return resize(image, record_size(size, crop))


def resize(image, side):
    """uint8 [H, W, 3] -> uint8 [side, side, 3], bilinear with antialiasing; unchanged when already that size."""

    def resized():
        x = tf.image.resize(tf.cast(image, tf.float32), (side, side), antialias=True)
        return tf.cast(tf.clip_by_value(tf.round(x), 0, 255), tf.uint8)

    shape = tf.shape(image)
    same = tf.logical_and(tf.equal(shape[0], side), tf.equal(shape[1], side))
    return tf.ensure_shape(tf.cond(same, lambda: image, resized), (side, side, 3))


def resize_batch(batch, side, chunk=2000):
    """uint8 [N, H, W, 3] -> uint8 [N, side, side, 3] in chunks, as `resize` does to each image (in memory)."""
    if batch.shape[1] == side and batch.shape[2] == side:
        return batch
    out = []
    for i in range(0, len(batch), chunk):
        x = tf.image.resize(tf.cast(batch[i : i + chunk], tf.float32), (side, side), antialias=True)
        out.append(tf.cast(tf.clip_by_value(tf.round(x), 0, 255), tf.uint8).numpy())
    return np.concatenate(out)


def decode_file(path):
    """An image file's pixels as uint8 [H, W, 3] (tf.io.decode_image: JPEG, PNG, BMP, GIF's first frame, WebP)."""
    return tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)


def list_images(root):
    """Relative paths of the files under root whose extension is in EXTENSIONS, recursively, sorted.

    Hidden files and folders (a leading ".", such as the cache folder .pgn_tf_cache) are left out;
    symbolic links to folders are followed.
    """
    found = []
    for folder, subfolders, files in os.walk(root, followlinks=True):
        subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))
        found += [
            os.path.relpath(os.path.join(folder, f), root)
            for f in files
            if not f.startswith(".") and f.lower().endswith(EXTENSIONS)
        ]
    return sorted(found)
