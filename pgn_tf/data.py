"""Training data as tf.data: TFDS (CIFAR-10, STL-10, CelebA-HQ) and embedded digits, NHWC in [-1, 1].

Every dataset function takes (batch_size, seed, start_step) and returns a
repeated dataset of `(images [batch_size, S, S, 3] float32 in [-1, 1],
labels [batch_size] int32)`. The order is a pure function of (seed, position):
each epoch is a seeded permutation (`index_shuffle`) and the flips are
seeded by position, so a run resumed at step s with start_step=s sees exactly
the batches an uninterrupted run sees.
"""

import os
import socket
import threading

import numpy as np
import tensorflow as tf


class DataError(ValueError):
    """A dataset that cannot be loaded; the message says how to fix it."""


def _pipeline(images, labels, batch_size, seed, start_step, random_flip):
    """images: uint8 [N, S, S, 3] in memory; labels: int [N]."""
    n = len(images)
    if batch_size <= 0:
        raise DataError(f"batch_size must be positive, got {batch_size}.")
    if n < batch_size:
        raise DataError(f"The dataset has {n} images, fewer than one batch of {batch_size}.")
    labels = np.asarray(labels, np.int32)

    def position_to_index(i):
        epoch, pos = i // n, i % n
        return tf.random.experimental.index_shuffle(pos, tf.stack([tf.cast(seed, tf.int64), epoch]), n - 1)

    def gather(idx):
        batch, y = tf.numpy_function(lambda i: (images[i], labels[i]), [idx], (tf.uint8, tf.int32), stateful=False)
        batch.set_shape((None,) + images.shape[1:])
        y.set_shape((None,))
        return batch, y

    def preprocess(step, batch_and_labels):
        batch, y = batch_and_labels
        x = tf.cast(batch, tf.float32) / 127.5 - 1.0
        if random_flip:
            flip = tf.random.stateless_uniform([tf.shape(x)[0], 1, 1, 1], seed=tf.stack([seed + 1, step])) < 0.5
            x = tf.where(flip, tf.reverse(x, axis=[2]), x)
        return x, y

    start = int(start_step) * batch_size
    ds = tf.data.Dataset.range(start, 2**62).map(position_to_index).batch(batch_size).map(gather)
    ds = tf.data.Dataset.zip(tf.data.Dataset.range(int(start_step), 2**62), ds)
    return ds.map(preprocess, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def _resize_uint8(images, size, chunk=2000):
    """Bilinear (antialiased) resize of uint8 [N, H, W, C] to size x size, in chunks."""
    if images.shape[1] == size and images.shape[2] == size:
        return images
    out = []
    for i in range(0, len(images), chunk):
        x = tf.image.resize(tf.cast(images[i : i + chunk], tf.float32), (size, size), antialias=True)
        out.append(tf.cast(tf.clip_by_value(tf.round(x), 0, 255), tf.uint8).numpy())
    return np.concatenate(out)


def digits_arrays(size=32):
    """scikit-learn's handwritten digits as uint8 [1797, size, size, 3] (grey over RGB) and labels [1797]."""
    from sklearn.datasets import load_digits

    d = load_digits()
    grey = np.round(d.images / 16.0 * 255.0).astype(np.uint8)[..., None]
    return _resize_uint8(np.repeat(grey, 3, axis=-1), size), d.target


def digits(batch_size, seed=0, start_step=0, size=32, random_flip=False):
    """scikit-learn's handwritten digits (1,797 8x8 images, 10 classes), offline.

    Brought to size x size by bilinear resizing, grey repeated over RGB. No
    flips by default: mirrored digits are not digits.
    """
    images, labels = digits_arrays(size)
    return _pipeline(images, labels, batch_size, seed, start_step, random_flip)


# Hosts the TFDS builders download from; checked (DNS only) before a download.
_DOWNLOAD_HOSTS = {"cifar10": "www.cs.toronto.edu", "stl10": "ai.stanford.edu"}


def host_reachable(host, timeout=10.0):
    """True when `host` resolves within `timeout` seconds (no connection is made)."""
    result = []
    thread = threading.Thread(target=lambda: result.append(_resolves(host)), daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(result and result[0])


def _resolves(host):
    try:
        socket.getaddrinfo(host, 443)
        return True
    except OSError:
        return False


def _tfds_arrays(name, split, data_dir, download, size):
    """All images (uint8, resized to size) and labels of a TFDS split."""
    import tensorflow_datasets as tfds

    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError as e:
        raise DataError(f"Unknown TFDS dataset {name!r}: {e}") from None
    where = data_dir or os.path.expanduser("~/tensorflow_datasets")
    try:
        ds = builder.as_dataset(split=split, shuffle_files=False)
    except AssertionError:
        manual = getattr(type(builder), "MANUAL_DOWNLOAD_INSTRUCTIONS", None)
        if manual:
            manual_dir = os.path.join(where, "downloads", "manual")
            raise DataError(
                f"{name} needs a manual download into {manual_dir} (TFDS then prepares it in {where}): "
                f"{' '.join(manual.split())}"
            ) from None
        host = _DOWNLOAD_HOSTS.get(name.split("/")[0])
        if not download or (host and not host_reachable(host)):
            raise DataError(
                f"{name} is not prepared in {where} and cannot be downloaded from here: run "
                f"`tfds build {name} --data_dir={where}` on a machine with network access and copy "
                f"{where}/{name.split('/')[0]} here, or set data_dir to where it is prepared."
            ) from None
        builder.download_and_prepare()
        ds = builder.as_dataset(split=split, shuffle_files=False)
    images, labels = [], []
    for batch in ds.batch(2000).prefetch(2):
        images.append(_resize_uint8(batch["image"].numpy(), size))
        labels.append(batch["label"].numpy() if "label" in batch else np.zeros(len(batch["image"]), np.int64))
    return np.concatenate(images), np.concatenate(labels)


def cifar10(batch_size, seed=0, start_step=0, data_dir=None, download=True, random_flip=True):
    """TFDS cifar10, train split (50,000 images, 32x32, 10 classes)."""
    images, labels = _tfds_arrays("cifar10", "train", data_dir, download, 32)
    return _pipeline(images, labels, batch_size, seed, start_step, random_flip)


def stl10(batch_size, seed=0, start_step=0, data_dir=None, download=True, random_flip=True):
    """TFDS stl10, the 100,000 unlabelled images, resized 96 -> 48 (labels are 0)."""
    images, labels = _tfds_arrays("stl10", "unlabelled", data_dir, download, 48)
    return _pipeline(images, np.zeros_like(labels), batch_size, seed, start_step, random_flip)


def celeb_a_hq(batch_size, seed=0, start_step=0, resolution=128, data_dir=None, download=True, random_flip=True):
    """TFDS celeb_a_hq/<resolution> (30,000 faces; manual download), unlabelled."""
    if resolution not in (128, 256):
        raise DataError(f"celeb_a_hq resolution must be 128 or 256, got {resolution}.")
    images, labels = _tfds_arrays(f"celeb_a_hq/{resolution}", "train", data_dir, download, resolution)
    return _pipeline(images, np.zeros_like(labels), batch_size, seed, start_step, random_flip)


# name -> (TFDS name, default split, image size): the datasets reference statistics are made for.
REFERENCE_DATASETS = {
    "cifar10": ("cifar10", "train", 32),
    "stl10": ("stl10", "unlabelled", 48),
    "celeb_a_hq/128": ("celeb_a_hq/128", "train", 128),
    "celeb_a_hq/256": ("celeb_a_hq/256", "train", 256),
}


def arrays(name, split=None, data_dir=None, download=True):
    """All images of a dataset split as uint8 [N, S, S, 3] at the size the models train on (for statistics).

    name: "digits" or a key of REFERENCE_DATASETS; split: a TFDS split (default: the one training uses).
    """
    if name == "digits":
        return digits_arrays(32)[0]
    if name not in REFERENCE_DATASETS:
        raise DataError(f"unknown dataset {name!r}; choose one of {['digits', *REFERENCE_DATASETS]}.")
    tfds_name, default_split, size = REFERENCE_DATASETS[name]
    return _tfds_arrays(tfds_name, split or default_split, data_dir, download, size)[0]
