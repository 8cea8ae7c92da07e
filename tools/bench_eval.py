"""Evaluation throughput: python tools/bench_eval.py [--arch dcgan.32] [--images 500] [--batch_size 100]

Times the whole evaluation path (generator -> bilinear resize to 299 ->
feature network -> activations) with a network of Inception-v3's size and
compute (keras.applications.InceptionV3, random weights, 1008 logits and the
2048-d pool), and the digits classifier, then the metric arithmetic on
50,000 activations, and precision / recall / density / coverage on 10,000 x 10,000 features of 2,048
dimensions (the reference's radii once, then one evaluation's scores, and that share of a whole
evaluation of 10,000 images with Inception). Prints one JSON line per measurement with images/s and
the projected seconds for 50,000 images.
"""

import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")  # as pgn_tf's commands set it (the times in docs/ are with it)

import common
import keras
import numpy as np
import tensorflow as tf
from absl import app, flags

from pgn_tf import train_lib
from pgn_tf.eval import digits_classifier, diversity, evaluator, features, stats

ARCH = flags.DEFINE_string("arch", "dcgan.32", "Generator architecture.")
IMAGES = flags.DEFINE_integer("images", 500, "Images timed per network (after one warm-up batch).")
BATCH = flags.DEFINE_integer("batch_size", 100, "Generator and feature-network batch.")
FULL = 50_000
DIVERSITY_N = 10_000  # real and fake features for the diversity scores (the source papers' default)


def inception_sized(batch_size):
    """A FeatureNet with Inception-v3's architecture and random weights (same compute as the real one)."""
    base = keras.applications.InceptionV3(weights=None, include_top=False, pooling="avg", input_shape=(299, 299, 3))
    head = keras.layers.Dense(1008)
    model = keras.Model(base.input, [head(base.output), base.output])
    fn = tf.function(lambda x: dict(zip(("logits", "pool_3"), model(x, training=False))))
    return features.FeatureNet("inception_v3_random", fn, 299, batch_size)


def time_path(gan, net, n, batch_size):
    batches = evaluator.generated_batches(gan, True, batch_size, seed=0)
    net.stream(batches, batch_size)  # warm-up: traces both functions
    t0 = time.perf_counter()
    _, pool = net.stream(batches, n)
    seconds = time.perf_counter() - t0
    return {
        "network": net.name,
        "images": n,
        "images_per_sec": round(n / seconds, 2),
        "projected_s_for_50k": round(FULL / n * seconds, 1),
        "feature_dim": pool.shape[1],
        "peak_rss_mib": round(common.rss_mib(), 1),
    }


def time_diversity(inception_images_per_sec, n=DIVERSITY_N, dim=2048):
    """Seconds of precision / recall / density / coverage on n real and n fake dim-d features (float32).

    The real side's radii (k = 3 and 5) are made once per reference and cached with it; an evaluation then
    costs one scores() call. Its share is against the whole evaluation of n images with Inception: the
    feature pass at the measured images/s plus the four scores.
    """
    rng = np.random.default_rng(1)
    real = rng.normal(size=(n, dim)).astype(np.float32)
    fake = (rng.normal(size=(n, dim)) * 1.1).astype(np.float32)
    diversity.scores(real[:2048], fake[:2048])  # warm-up: traces the blocks
    t0 = time.perf_counter()
    radii = [diversity.knn_radii(real, k) for k in (diversity.K_PRECISION_RECALL, diversity.K_DENSITY_COVERAGE)]
    radii_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    diversity.scores(real, fake, *radii)
    scores_s = time.perf_counter() - t0
    inception_s = n / inception_images_per_sec
    return {
        "diversity_features": [n, n, dim],
        "reference_radii_s": round(radii_s, 1),
        "scores_s": round(scores_s, 1),
        "inception_pass_s_for_n": round(inception_s, 1),
        "scores_share_of_evaluation": round(scores_s / (scores_s + inception_s), 4),
    }


def main(argv):
    del argv
    gan = train_lib.build_gan(common.arch_config(ARCH.value))
    base = {"arch": ARCH.value, "batch_size": BATCH.value, "cpus": os.cpu_count()}
    paths = []
    for net in (inception_sized(BATCH.value), digits_classifier.load_digits_classifier(batch_size=BATCH.value)):
        paths.append({**base, **time_path(gan, net, IMAGES.value, BATCH.value)})
        print(json.dumps(paths[-1]), flush=True)
    print(json.dumps(time_diversity(paths[0]["images_per_sec"])), flush=True)
    rng = np.random.default_rng(0)
    real, fake = rng.normal(size=(10_000, 2048)), rng.normal(size=(FULL, 2048)).astype(np.float32)
    ref = stats.Reference.from_activations(real, kid_images=10_000)
    t0 = time.perf_counter()
    ref.scores(rng.normal(size=(FULL, 1008)), fake)
    print(json.dumps({"metrics_s_for_50k": round(time.perf_counter() - t0, 1), "parts": "IS + FID + KID"}), flush=True)
    return 0


if __name__ == "__main__":
    app.run(lambda argv: sys.exit(main(argv)))
