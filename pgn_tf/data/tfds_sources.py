"""Any TFDS image dataset as a source, and the paper's datasets (CIFAR-10, STL-10, CelebA-HQ, LSUN) through it."""

import difflib
import os
import socket
import threading

import tensorflow as tf

from pgn_tf.data import cache, images
from pgn_tf.data.source import SourceInfo, pipeline
from pgn_tf.errors import DataError

# Hosts the TFDS builders download from; checked (DNS only) before a download, so an offline machine fails at
# once instead of after TFDS's retries (minutes). Others: TFDS's own bucket, where most builders download from.
_DOWNLOAD_HOSTS = {"cifar10": "www.cs.toronto.edu", "stl10": "ai.stanford.edu", "lsun": "dl.yf.io"}
_DEFAULT_HOST = "storage.googleapis.com"
LSUN_CATEGORIES = (
    "classroom", "bedroom", "bridge", "church_outdoor", "conference_room", "dining_room", "kitchen",
    "living_room", "restaurant", "tower", "airplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat",
    "chair", "cow", "dining_table", "dog", "horse", "motorbike", "person", "potted_plant", "sheep", "sofa",
    "train", "tv-monitor",
)  # fmt: skip


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


def _prepared(name, split, data_dir, download):
    """(builder, tf.data of the split's examples in their stored order), downloading when allowed."""
    import tensorflow_datasets as tfds_lib

    from pgn_tf import data  # looked up at call time: tests replace data.host_reachable

    try:
        builder = tfds_lib.builder(name, data_dir=data_dir)
    except tfds_lib.core.registered.DatasetNotFoundError:
        close = difflib.get_close_matches(name.split("/")[0].split(":")[0], tfds_lib.list_builders(), n=3)
        hint = f" (close: {', '.join(close)})" if close else ""
        raise DataError(
            f"unknown TFDS dataset {name!r}{hint}; see https://www.tensorflow.org/datasets/catalog."
        ) from None
    except ValueError as e:  # e.g. a config the builder does not have
        raise DataError(_bad_config(tfds_lib, name) or f"TFDS dataset {name!r}: {str(e).splitlines()[0]}") from None
    where = data_dir or os.path.expanduser("~/tensorflow_datasets")
    try:
        return builder, builder.as_dataset(split=split, shuffle_files=False)
    except AssertionError:
        pass
    except ValueError as e:  # an unknown split
        raise DataError(f"TFDS dataset {name!r} has no split {split!r} ({str(e).splitlines()[0]}).") from None
    manual = getattr(type(builder), "MANUAL_DOWNLOAD_INSTRUCTIONS", None)
    if manual:
        manual_dir = os.path.join(where, "downloads", "manual")
        raise DataError(
            f"{name} needs a manual download into {manual_dir} (TFDS then prepares it in {where}): "
            f"{' '.join(manual.split())}"
        )
    fix = (
        f"run `tfds build {name} --data_dir={where}` on a machine with network access and copy "
        f"{where}/{name.split('/')[0]} here, or set data_dir to where it is prepared."
    )
    host = _DOWNLOAD_HOSTS.get(name.split("/")[0], _DEFAULT_HOST)
    if not download or not data.host_reachable(host):
        raise DataError(f"{name} is not prepared in {where} and cannot be downloaded from here: {fix}")
    try:
        builder.download_and_prepare()
    except Exception as e:  # noqa: BLE001 (network, disk or the builder's own: all end in the same fix)
        raise DataError(f"{name} is not prepared in {where} and downloading it failed ({type(e).__name__}): {fix}")
    return builder, builder.as_dataset(split=split, shuffle_files=False)


def _bad_config(tfds_lib, name):
    """The line for a name whose config the builder lacks ("lsun/church"), or None."""
    base, _, config = name.split(":")[0].partition("/")
    try:
        configs = [c.name for c in tfds_lib.builder_cls(base).BUILDER_CONFIGS]
    except Exception:  # noqa: BLE001 (any failure: fall back to TFDS's own message)
        return None
    if not config or config in configs:
        return None
    close = difflib.get_close_matches(config, configs, n=3)
    if not configs:
        return f"TFDS dataset {base} has no configs; set the name to {base!r}."
    hint = f"close: {', '.join(f'{base}/{c}' for c in close)}" if close else f"its configs: {', '.join(configs)}"
    return f"TFDS dataset {base} has no config {config!r} ({hint})."


def tfds_source(
    name, split="train", image_key="image", label_key=None, size=None, crop="center", data_dir=None,
    download=True, in_memory="auto", cache_dir=None,
):  # fmt: skip
    """A TFDS split's images in their stored order as a source (see `tfds` for the arguments).

    Returns:
      ArraySource or cache.DiskSource of uint8 records.

    Raises:
      DataError: an unknown dataset, config or split, no image feature under image_key, no ClassLabel
        under label_key, a varying image shape without size, an unprepared dataset that cannot be
        downloaded, a bad crop.
    """
    import tensorflow_datasets as tfds_lib

    if not name:
        raise DataError('data.tfds.name is not set; bind it to a TFDS name, e.g. data.tfds.name = "mnist".')
    builder, ds = _prepared(name, split, data_dir, download)
    features = builder.info.features
    feature = features[image_key] if image_key in features else None  # noqa: SIM401 (FeaturesDict has no .get)
    if not isinstance(feature, tfds_lib.features.Image):
        kinds = [k for k in features if isinstance(features[k], tfds_lib.features.Image)]
        raise DataError(
            f"TFDS {name} has no image feature {image_key!r} (its image features: {kinds or 'none'}); "
            f"set data.tfds.image_key to one of them."
        )
    height, width = feature.shape[:2]
    if size is None:
        if not height or height != width:
            raise DataError(
                f"TFDS {name} has images of {'varying' if not height else f'{height}x{width}'} shape; "
                "set data.tfds.size to the size the architecture takes (and data.tfds.crop)."
            )
        size = height
    images.check_size(size, crop, "data.tfds")
    class_names = ()
    if label_key is not None:
        label = features[label_key] if label_key in features else None  # noqa: SIM401
        if not isinstance(label, tfds_lib.features.ClassLabel):
            kinds = [k for k in features if isinstance(features[k], tfds_lib.features.ClassLabel)]
            raise DataError(
                f"TFDS {name} has no class label {label_key!r} (its class labels: {kinds or 'none'}); "
                "set data.tfds.label_key to one of them, or to None."
            )
        class_names = tuple(label.names)
    try:
        count = builder.info.splits[split].num_examples or None
    except (KeyError, ValueError, TypeError):
        count = None  # not recorded (e.g. mock data): filled as decoded
    side = images.record_size(size, crop)
    stored = tuple(feature.shape) == (side, side, 3)  # already a record: no per-image work (CIFAR-10)

    def example(ex):
        x = ex[image_key] if stored else images.fit(ex[image_key], size, crop)
        y = tf.zeros((), tf.int32) if label_key is None else tf.cast(ex[label_key], tf.int32)
        return x, y

    def batches(extra):
        del extra
        yield from ds.map(example, num_parallel_calls=tf.data.AUTOTUNE).batch(2000).prefetch(2).as_numpy_iterator()

    where = os.path.abspath(data_dir or os.path.expanduser("~/tensorflow_datasets"))
    identity = {"what": f"tfds-{name}-{split}", "name": name, "split": split, "image_key": image_key}
    identity.update(label_key=label_key, size=size, crop=crop, data_dir=where)
    checksum = f"{builder.info.full_name} {count} {_stored_files(builder.data_dir)}"
    info = SourceInfo(f"tfds:{name}/{split}", size, len(class_names) or None, class_names)
    source = cache.materialize(
        identity, checksum, (side, side, 3), batches, count, info, "data.tfds", in_memory,
        cache_dir or os.path.join(where, "pgn_tf_cache"),
    )  # fmt: skip
    if not len(source):
        raise DataError(f"TFDS {name} split {split!r} has no images.")
    return source


def _stored_files(folder):
    """The prepared dataset's files with their sizes (a cache of it is stale when these change)."""
    try:
        return sorted((f, os.path.getsize(os.path.join(folder, f))) for f in os.listdir(folder))
    except OSError:
        return []


def tfds(
    batch_size, seed=0, start_step=0, name=None, split="train", image_key="image", label_key=None, size=None,
    crop="center", data_dir=None, download=True, random_flip=True, in_memory="auto", cache_dir=None,
):  # fmt: skip
    """Any TFDS image dataset, e.g. name = "mnist", "lsun/church_outdoor", "oxford_flowers102".

    Args:
      batch_size, seed, start_step: the dataset contract (set by the run).
      name: the TFDS name (with config, and version if wanted: "celeb_a_hq/256", "mnist:3.0.1").
      split: a TFDS split ("train", "test", "train[:90%]", ...).
      image_key: the image feature.
      label_key: a ClassLabel feature for conditional models; None: every label is 0.
      size: the side S the run trains at; None takes the dataset's own, when its images are square.
      crop: how a non-square image becomes square: "center" (centred square), "resize" (stretched) or
        "random" (a seeded window of the centred square, see `images.fit`). Grey images are repeated over
        RGB, RGBA drops its alpha.
      data_dir: the TFDS data_dir (default ~/tensorflow_datasets).
      download: let TFDS download and prepare the dataset when it is not prepared.
      random_flip: mirror each image left-right with probability 1/2.
      in_memory: "auto" (in memory up to 2 GiB of decoded images, else streamed from a cache), True, False.
      cache_dir: where the decoded cache is written when streamed (default DATA_DIR/pgn_tf_cache).

    Returns:
      tf.data of (images float32 [batch_size, S, S, 3] in [-1, 1], labels int32 [batch_size]).
    """
    source = tfds_source(name, split, image_key, label_key, size, crop, data_dir, download, in_memory, cache_dir)
    return pipeline(source, batch_size, seed, start_step, random_flip)


def cifar10(batch_size, seed=0, start_step=0, data_dir=None, download=True, random_flip=True, in_memory="auto"):
    """TFDS cifar10, train split (50,000 images, 32x32, 10 classes)."""
    source = tfds_source("cifar10", "train", label_key="label", size=32, data_dir=data_dir, download=download,
                         in_memory=in_memory)  # fmt: skip
    return pipeline(source, batch_size, seed, start_step, random_flip)


def stl10(batch_size, seed=0, start_step=0, data_dir=None, download=True, random_flip=True, in_memory="auto"):
    """TFDS stl10, the 100,000 unlabelled images, resized 96 -> 48 (labels are 0)."""
    source = tfds_source("stl10", "unlabelled", size=48, data_dir=data_dir, download=download, in_memory=in_memory)
    return pipeline(source, batch_size, seed, start_step, random_flip)


def celeb_a_hq(
    batch_size, seed=0, start_step=0, resolution=128, data_dir=None, download=True, random_flip=True,
    in_memory="auto", cache_dir=None,
):  # fmt: skip
    """TFDS celeb_a_hq/<resolution> (30,000 faces; manual download), unlabelled; 256 is streamed (5.9 GB)."""
    if resolution not in (128, 256):
        raise DataError(f"celeb_a_hq resolution must be 128 or 256, got {resolution}.")
    source = tfds_source(f"celeb_a_hq/{resolution}", "train", size=resolution, data_dir=data_dir,
                         download=download, in_memory=in_memory, cache_dir=cache_dir)  # fmt: skip
    return pipeline(source, batch_size, seed, start_step, random_flip)


def lsun(
    batch_size, seed=0, start_step=0, category="church_outdoor", size=256, crop="center", split="train",
    data_dir=None, download=True, random_flip=True, in_memory="auto", cache_dir=None,
):  # fmt: skip
    """TFDS lsun/<category> (church_outdoor: 126,227 images, bedroom: 3.0 M), unlabelled, streamed when large.

    LSUN images have a short side of 256 and vary in the long one; crop says how they become square
    ("resize" is the official code's Resize((256, 256))). Other arguments as for `tfds`.
    """
    if category not in LSUN_CATEGORIES:
        close = difflib.get_close_matches(str(category), LSUN_CATEGORIES, n=3)
        hint = f" (close: {', '.join(close)})" if close else ""
        raise DataError(f"unknown LSUN category {category!r}{hint}; choose one of {', '.join(LSUN_CATEGORIES)}.")
    source = tfds_source(f"lsun/{category}", split, size=size, crop=crop, data_dir=data_dir, download=download,
                         in_memory=in_memory, cache_dir=cache_dir)  # fmt: skip
    return pipeline(source, batch_size, seed, start_step, random_flip)


def reference_source(name, split=None, data_dir=None, download=True):
    """The source reference statistics of a REFERENCE_DATASETS name are made from (no flips, stored order)."""
    tfds_name, default_split, size = REFERENCE_DATASETS[name]
    return tfds_source(tfds_name, split or default_split, size=size, data_dir=data_dir, download=download)


# name -> (TFDS name, default split, image size): the datasets reference statistics are made for.
REFERENCE_DATASETS = {
    "cifar10": ("cifar10", "train", 32),
    "stl10": ("stl10", "unlabelled", 48),
    "celeb_a_hq/128": ("celeb_a_hq/128", "train", 128),
    "celeb_a_hq/256": ("celeb_a_hq/256", "train", 256),
}
