"""Reference statistics for FID / KID of any source: python tools/compute_fid_stats.py --dataset=cifar10 --split=train

The images come from a named dataset (digits, cifar10, stl10, celeb_a_hq/128|256), a folder of images
(--dataset=folder:PATH --size=S [--crop=center|resize|random]), any TFDS image dataset
(--dataset=tfds:NAME [--split] [--size] [--crop]), or a run's own config (--gin_file / --gin_param: the
train_and_evaluate.dataset_fn it binds, e.g. --gin_file=church256.gin). Every image of the source, in its
stored order and unflipped (a random crop's centred window), runs through the feature network
(Inception, or the digits classifier for digits) and the file gets mu and sigma of the pool features (the
npz layout of the official code's statistics, so either can be passed as fid_stats), plus up to
--kid_images activations for KID and the feature network's name. Sources larger than memory are
streamed from their decoded cache.
"""

import os
import re
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")  # as pgn_tf's commands set it

import numpy as np
from absl import flags

from pgn_tf import data
from pgn_tf.errors import UserError, first_line
from pgn_tf.eval import digits_classifier, inception, stats

# Defined once per process (the tests load this file more than once; pgn_tf.train defines gin_file / gin_param).
_FLAGS = (
    (flags.DEFINE_string, "dataset", None,
     f"digits, one of {list(data.REFERENCE_DATASETS)}, folder:PATH or tfds:NAME (default cifar10)."),
    (flags.DEFINE_string, "split", None, "TFDS split (default: the one training uses; train for tfds:NAME)."),
    (flags.DEFINE_integer, "size", None, "Image side for folder:PATH (required) and tfds:NAME (default: its own)."),
    (flags.DEFINE_string, "crop", "center", f"How non-square images become square: one of {data.images.CROPS}."),
    (flags.DEFINE_string, "data_dir", None, "TFDS data_dir."),
    (flags.DEFINE_multi_string, "gin_file", [], "A run's gin files: statistics of its dataset_fn."),
    (flags.DEFINE_multi_string, "gin_param", [], "Gin bindings, after the files."),
    (flags.DEFINE_string, "out", None, "Output .npz (default stats/<dataset>.<split>.npz)."),
    (flags.DEFINE_string, "inception_path", None, "A local Inception SavedModel / TF-Hub module folder."),
    (flags.DEFINE_integer, "kid_images", stats.KID_IMAGES, "Real activations kept for KID (0: none)."),
    (flags.DEFINE_integer, "batch_size", 100, "Images per forward pass."),
)  # fmt: skip
for _define, _name, _default, _help in _FLAGS:
    if _name not in flags.FLAGS:
        _define(_name, _default, _help)
FLAGS = flags.FLAGS


def resolve(dataset, split=None, data_dir=None, size=None, crop="center"):
    """The source a --dataset value names (see the module docstring).

    Raises:
      data.DataError: an unknown name, or what the source raises.
    """
    if crop not in data.images.CROPS:
        raise data.DataError(f"--crop must be one of {data.images.CROPS}, got {crop!r}.")
    if dataset == "digits":
        return data.digits_source(32)
    if dataset.startswith("folder:"):
        if size is None:
            raise data.DataError("--dataset=folder:PATH needs --size, the side the model trains at (e.g. --size=64).")
        return data.folder_source(dataset[len("folder:") :], size, crop)
    if dataset.startswith("tfds:"):
        return data.tfds_source(dataset[len("tfds:") :], split or "train", size=size, crop=crop, data_dir=data_dir)
    if dataset in data.REFERENCE_DATASETS:
        return data.reference_source(dataset, split, data_dir)
    raise data.DataError(
        f"unknown dataset {dataset!r}; choose one of {['digits', *data.REFERENCE_DATASETS]}, folder:PATH or tfds:NAME."
    )


def configured_source(gin_files, gin_params, size=None):
    """The source of the train_and_evaluate.dataset_fn a run's gin files and bindings give.

    A one-string dataset_fn ("folder:PATH", "tfds:NAME") trains at the critic's side, which the config does
    not state: size (--size) gives it.
    """
    import gin

    from pgn_tf import cli

    cli.parse_gin(gin_files, gin_params)
    try:
        ref = gin.query_parameter("train_and_evaluate.dataset_fn")
    except ValueError:
        raise data.DataError("the gin config binds no train_and_evaluate.dataset_fn; pass a paper row.") from None
    if isinstance(ref, str):
        if size is None:
            raise data.DataError(f"train_and_evaluate.dataset_fn = {ref!r} needs --size, the side the run trains at.")
        return data.source_of(data.named(ref, size)(batch_size=1, seed=0, start_step=0))
    source = data.source_of(ref.scoped_configurable_fn(batch_size=1, seed=0, start_step=0))
    if source is None:
        raise data.DataError(f"train_and_evaluate.dataset_fn = @{ref.selector} is not a pgn_tf.data source.")
    return source


def real_batches(source, batch_size):
    """The source's images in stored order as float32 [B, S, S, 3] in [-1, 1] (a random crop's centred window)."""
    size, side = source.info.size, source.record_shape[0]
    top = (side - size) // 2
    for i in range(0, len(source), batch_size):
        x, _ = source.read(np.arange(i, min(i + batch_size, len(source))))
        yield x[:, top : top + size, top : top + size].astype(np.float32) / 127.5 - 1.0


def compute_source(source, out, inception_path=None, kid_images=stats.KID_IMAGES, batch_size=100):
    """Writes the statistics file of every image of a source and returns the Reference."""
    if source.info.name == "digits":
        net = digits_classifier.load_digits_classifier(batch_size=batch_size)
    else:
        net = inception.load_inception(path=inception_path, batch_size=batch_size)
    _, pool = net.stream(real_batches(source, batch_size), len(source))
    ref = stats.Reference.from_activations(pool, net.name, kid_images=kid_images)
    ref.save(out)
    name = source.info.name
    print(f"{out}: {len(source)} images of {name} ({net.name} features, dimension {pool.shape[1]})", flush=True)
    return ref


def compute(dataset, split, out, inception_path=None, data_dir=None, kid_images=stats.KID_IMAGES, batch_size=100,
            size=None, crop="center"):  # fmt: skip
    """Writes the statistics file of a --dataset value and returns the Reference."""
    return compute_source(resolve(dataset, split, data_dir, size, crop), out, inception_path, kid_images, batch_size)


def default_out(dataset, split, source):
    """stats/<dataset>.<split>.npz, named after the source."""
    if dataset is None:
        name = source.info.name
    else:
        split = split or data.REFERENCE_DATASETS.get(dataset, (None, "train" if ":" in dataset else "all"))[1]
        name = f"{dataset}.{split}"
    if dataset and dataset.startswith("folder:"):
        name = f"{os.path.basename(os.path.normpath(dataset[7:]))}.{source.info.size}"
    return os.path.join("stats", re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") + ".npz")


def main():
    dataset, out = FLAGS.dataset, FLAGS.out
    try:
        if FLAGS.gin_file or FLAGS.gin_param:
            if dataset:
                raise data.DataError("pass either --dataset or --gin_file / --gin_param, not both.")
            source = configured_source(FLAGS.gin_file, FLAGS.gin_param, FLAGS.size)
        else:
            dataset = dataset or "cifar10"
            source = resolve(dataset, FLAGS.split, FLAGS.data_dir, FLAGS.size, FLAGS.crop)
        out = out or default_out(dataset, FLAGS.split, source)
        compute_source(source, out, FLAGS.inception_path, FLAGS.kid_images, FLAGS.batch_size)
    except (UserError, inception.InceptionError, stats.StatsError) as e:  # each is one line, exit code 2
        print(f"error: {first_line(e)}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"error: cannot write {out} ({e.strerror}); pass another --out.", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    from pgn_tf import cli

    cli.start(main)
