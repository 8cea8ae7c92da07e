"""The source contract: uint8 records read by index; the seeded order, crops and flips are built once on top."""

import dataclasses
import json
import weakref

import numpy as np
import tensorflow as tf

from pgn_tf.errors import DataError

# Decoded uint8 bytes a source holds in memory under in_memory="auto"; a larger one is streamed from a disk cache.
MEMORY_BUDGET = 2 << 30
IN_MEMORY = ("auto", True, False)


@dataclasses.dataclass(frozen=True)
class SourceInfo:
    """What a source is, for messages, checks and tools.

    Attributes:
      name: where the images come from ("tfds:cifar10/train", "folder:/data/faces", "digits").
      size: the delivered images are size x size.
      num_classes: the label count; None when unlabelled (every label is 0).
      class_names: the classes' names (subfolders of an image folder, a ClassLabel's names), or ().
      where: the cache file a streamed source reads, else "".
    """

    name: str
    size: int
    num_classes: int | None = None
    class_names: tuple = ()
    where: str = ""


class ArraySource:
    """Records held in memory.

    Args:
      images: uint8 [N, R, R, 3] (R = size, or size + size // 8 for random crops).
      labels: int [N].
      info: SourceInfo.
    """

    def __init__(self, images, labels, info):
        self.images = images
        self.labels = np.asarray(labels, np.int32)
        self.info = info

    def __len__(self):
        return len(self.images)

    @property
    def record_shape(self):
        return tuple(self.images.shape[1:])

    def read(self, indices):
        """indices: int [k] -> (uint8 [k, R, R, 3], int32 [k])."""
        return self.images[indices], self.labels[indices]

    def valid(self):
        return True


# Sources alive in this process by (settings, contents): a run that builds its dataset twice (training and the
# reference statistics) decodes or opens the data once. TF keeps a numpy_function's callable in the global graph
# for the process's life, so a source once read stays loaded; sharing keeps that to one copy per source.
_LIVE = weakref.WeakValueDictionary()


def shared(identity, checksum, make):
    """The live source made with these settings and contents (a cache file still whole), else make()."""
    key = json.dumps([identity, checksum], sort_keys=True)
    source = _LIVE.get(key)
    if source is None or not source.valid():
        source = make()
        _LIVE[key] = source
    return source


def forget():
    """Forgets the live sources, so the next dataset function call decodes or opens its data anew (tests)."""
    _LIVE.clear()


def use_memory(in_memory, num_bytes):
    """Whether to hold a source of num_bytes (None: unknown) decoded bytes in memory."""
    if in_memory not in IN_MEMORY or not isinstance(in_memory, (bool, str)):
        raise DataError(f'in_memory must be "auto", True or False, got {in_memory!r}.')
    if in_memory == "auto":
        return num_bytes is None or num_bytes <= MEMORY_BUDGET
    return in_memory


def collect(batches, count, record_shape):
    """(uint8 [N, R, R, 3], int32 [N]) from an iterator of (uint8 [k, R, R, 3], int [k]); count: N if known."""
    if count:
        # Filled in place: no second copy of the whole dataset at its peak (CelebA-HQ 256 is 5.9 GB).
        images, labels, n = np.empty((count, *record_shape), np.uint8), np.empty(count, np.int32), 0
        for x, y in batches:
            images[n : n + len(x)], labels[n : n + len(x)] = x, y
            n += len(x)
        return images[:n], labels[:n]
    parts = list(batches)
    if not parts:
        return np.zeros((0, *record_shape), np.uint8), np.zeros(0, np.int32)
    return np.concatenate([x for x, _ in parts]), np.concatenate([y for _, y in parts]).astype(np.int32)


def source_of(dataset):
    """The source a pgn_tf.data pipeline reads (ArraySource, cache.DiskSource), or None for another tf.data."""
    return getattr(dataset, "pgn_source", None)


def check_num_classes(dataset, num_classes):
    """Checks a conditional run's num_classes against the labels of the data it trains on.

    Args:
      dataset: what a dataset function returned.
      num_classes: the run's class count; None for an unconditional run (nothing to check).

    Raises:
      DataError: the data is unlabelled, or has another number of classes.
    """
    source = source_of(dataset)
    if source is None or num_classes is None:
        return
    info = source.info
    if info.num_classes is None:
        raise DataError(
            f"num_classes = {num_classes} needs labelled data, but {info.name} has no labels; label it "
            "(data.image_folder.labels_from_subfolders = True, data.tfds.label_key) or set num_classes = None."
        )
    if info.num_classes != num_classes:
        names = ", ".join(info.class_names[:5]) + (", ..." if len(info.class_names) > 5 else "")
        raise DataError(
            f"num_classes = {num_classes}, but {info.name} has {info.num_classes} classes"
            f"{f' ({names})' if names else ''}; set train_and_evaluate.num_classes = {info.num_classes}."
        )


def pipeline(source, batch_size, seed, start_step, random_flip):
    """The run's batches from any source: order, crops and flips are pure functions of (seed, position).

    Each epoch is a seeded permutation of the indices (`index_shuffle`); step s takes positions
    [s * batch_size, (s + 1) * batch_size). Flips (and, for records larger than the image, crop offsets) are
    drawn statelessly from (seed, step). So a run resumed with start_step = s sees exactly the batches an
    uninterrupted run sees, and a streamed source gives the batches its in-memory twin gives.

    Args:
      source: ArraySource or cache.DiskSource (len, record_shape, read(indices), info).
      batch_size: images per batch.
      seed: int.
      start_step: the first step's index.
      random_flip: mirror each image left-right with probability 1/2.

    Returns:
      A repeated tf.data of (images float32 [batch_size, S, S, 3] in [-1, 1], labels int32 [batch_size]),
      with the source as its `pgn_source` attribute (`source_of`).

    Raises:
      DataError: batch_size is not positive or larger than the dataset.
    """
    n, size, record = len(source), source.info.size, source.record_shape
    if batch_size <= 0:
        raise DataError(f"batch_size must be positive, got {batch_size}.")
    if n < batch_size:
        raise DataError(f"The dataset has {n} images, fewer than one batch of {batch_size}.")

    def position_to_index(i):
        epoch, pos = i // n, i % n
        return tf.random.experimental.index_shuffle(pos, tf.stack([tf.cast(seed, tf.int64), epoch]), n - 1)

    def gather(idx):
        batch, y = tf.numpy_function(source.read, [idx], (tf.uint8, tf.int32), stateful=False)
        batch.set_shape((None, *record))
        y.set_shape((None,))
        return batch, y

    def preprocess(step, batch_and_labels):
        batch, y = batch_and_labels
        if record[0] != size:
            batch = _random_crop(batch, size, record[0] - size, tf.stack([seed + 2, step]))
        if random_flip:  # on uint8, a quarter of the bytes; the same values as flipping the floats
            flip = tf.random.stateless_uniform([tf.shape(batch)[0], 1, 1, 1], seed=tf.stack([seed + 1, step])) < 0.5
            batch = tf.where(flip, tf.reverse(batch, axis=[2]), batch)
        return tf.cast(batch, tf.float32) / 127.5 - 1.0, y

    start = int(start_step) * batch_size
    ds = tf.data.Dataset.range(start, 2**62).map(position_to_index).batch(batch_size)
    ds = ds.map(gather, num_parallel_calls=tf.data.AUTOTUNE)  # deterministic: the order is kept
    ds = tf.data.Dataset.zip(tf.data.Dataset.range(int(start_step), 2**62), ds)
    ds = ds.map(preprocess, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
    ds.pgn_source = source
    return ds


def _random_crop(batch, size, margin, seed):
    """A size x size window of each uint8 [B, R, R, 3] record at offsets in [0, margin] drawn from seed."""
    offsets = tf.random.stateless_uniform([tf.shape(batch)[0], 2], seed=seed, maxval=margin + 1, dtype=tf.int32)
    window = tf.range(size)
    rows = tf.gather(batch, offsets[:, :1] + window, axis=1, batch_dims=1)
    return tf.gather(rows, offsets[:, 1:] + window, axis=2, batch_dims=1)
