"""Reference statistics for FID / KID: python tools/compute_fid_stats.py --dataset cifar10 --split train --out stats/cifar10.train.npz

Runs every image of the split through the feature network (Inception, or
the digits classifier for --dataset digits) and writes mu and sigma of the
pool features (the npz layout of the official code's statistics, so either
can be passed as fid_stats), plus up to --kid_images activations for KID and
the feature network's name.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
from absl import app, flags

from pgn_tf import data
from pgn_tf.eval import digits_classifier, inception, stats

DATASET = flags.DEFINE_string("dataset", "cifar10", f"digits or one of {list(data.REFERENCE_DATASETS)}.")
SPLIT = flags.DEFINE_string("split", None, "TFDS split (default: the one training uses).")
DATA_DIR = flags.DEFINE_string("data_dir", None, "TFDS data_dir.")
OUT = flags.DEFINE_string("out", None, "Output .npz (default stats/<dataset>.<split>.npz).")
INCEPTION_PATH = flags.DEFINE_string("inception_path", None, "A local Inception SavedModel / TF-Hub module folder.")
KID_IMAGES = flags.DEFINE_integer("kid_images", stats.KID_IMAGES, "Real activations kept for KID (0: none).")
BATCH_SIZE = flags.DEFINE_integer("batch_size", 100, "Images per forward pass.")


def compute(dataset, split, out, inception_path=None, data_dir=None, kid_images=stats.KID_IMAGES, batch_size=100):
    """Writes the statistics file and returns the Reference."""
    images = data.arrays(dataset, split, data_dir)
    if dataset == "digits":
        net = digits_classifier.load_digits_classifier(batch_size=batch_size)
    else:
        net = inception.load_inception(path=inception_path, batch_size=batch_size)
    batches = (images[i : i + batch_size].astype(np.float32) / 127.5 - 1.0 for i in range(0, len(images), batch_size))
    _, pool = net.stream(batches, len(images))
    ref = stats.Reference.from_activations(pool, net.name, kid_images=kid_images)
    ref.save(out)
    print(f"{out}: {len(images)} images of {dataset} ({net.name} features, dimension {pool.shape[1]})", flush=True)
    return ref


def main(argv):
    del argv
    split = SPLIT.value or data.REFERENCE_DATASETS.get(DATASET.value, (None, "all"))[1]
    out = OUT.value or os.path.join("stats", f"{DATASET.value.replace('/', '_')}.{split}.npz")
    try:
        compute(
            DATASET.value, SPLIT.value, out, INCEPTION_PATH.value, DATA_DIR.value, KID_IMAGES.value, BATCH_SIZE.value
        )
    except (data.DataError, inception.InceptionError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"error: cannot write {out} ({e.strerror}); pass another --out.", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    app.run(lambda argv: sys.exit(main(argv)))
