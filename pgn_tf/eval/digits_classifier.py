"""A small digits classifier: the offline feature network for the embedded digits data.

Inception cannot be reached offline and knows nothing of 8x8 digits, so the
quickstart scores its samples in the feature space of this CNN, trained on
scikit-learn's digits (seeded, about ten seconds on 2 CPU cores) on first use
and cached. Scores made with it are digits-classifier scores ("DC-IS",
"DC-FID"), comparable only with each other, never with Inception scores.
"""

import hashlib
import os

import keras
import numpy as np
import tensorflow as tf

from pgn_tf.data import digits_arrays
from pgn_tf.eval.features import FeatureNet

IMAGE_SIZE = 32
VERSION = 1  # bump when the architecture or training changes: the cache key
EPOCHS = 30
HOLDOUT = 297  # the last images, kept for the accuracy check


def default_cache_dir():
    return os.environ.get("PGN_TF_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "pgn_tf"))


def build(seed=0, filters=(16, 32, 64), width=64, name="digits_classifier"):
    """images [N, 32, 32, 3] in [-1, 1] -> (logits [N, 10], features [N, width]) as a two-output model.

    Three 3x3 convolution + max-pool blocks of `filters` on the images' grey mean, then `width` ReLU features.
    """
    init = lambda k: keras.initializers.HeUniform(seed=seed + k)
    x_in = keras.Input((IMAGE_SIZE, IMAGE_SIZE, 3))
    x = keras.layers.Lambda(lambda t: tf.reduce_mean(t, axis=-1, keepdims=True), name="grey")(x_in)
    for k, f in enumerate(filters):
        x = keras.layers.Conv2D(f, 3, padding="same", activation="relu", kernel_initializer=init(k))(x)
        x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Flatten()(x)
    features = keras.layers.Dense(width, activation="relu", kernel_initializer=init(3), name="features")(x)
    logits = keras.layers.Dense(10, kernel_initializer=init(4), name="logits")(features)
    return keras.Model(x_in, [logits, features], name=name)


def train(model, images, labels, seed, epochs=EPOCHS):
    """Full-batch-order-seeded Adam on the digits; small random shifts so generated strokes off-centre still count."""
    logits_model = keras.Model(model.input, model.outputs[0])
    logits_model.compile(
        optimizer=keras.optimizers.Adam(1e-3), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    rng = np.random.default_rng(seed)
    for _ in range(epochs):
        shifted = np.stack([np.roll(im, tuple(rng.integers(-2, 3, 2)), axis=(0, 1)) for im in images])
        order = rng.permutation(len(images))
        logits_model.fit(shifted[order], labels[order], batch_size=64, epochs=1, shuffle=False, verbose=0)


def accuracy(model, images, labels):
    logits = model.predict(images, batch_size=256, verbose=0)[0]
    return float(np.mean(np.argmax(logits, axis=1) == labels))


def load_digits_classifier(cache_dir=None, seed=0, batch_size=500):
    """The trained classifier as a FeatureNet ("logits" [N, 10], "pool_3" = the 64 features).

    Trained on the first 1,500 digits on first use and cached in cache_dir
    (default $PGN_TF_CACHE or ~/.cache/pgn_tf) as a weights file, written
    atomically; later calls load it.
    """

    def fit(model):
        images, labels = digits_arrays(IMAGE_SIZE)
        x = images.astype(np.float32) / 127.5 - 1.0
        train(model, x[:-HOLDOUT], labels[:-HOLDOUT], seed)

    path = os.path.join(cache_dir or default_cache_dir(), f"digits_classifier_v{VERSION}_seed{seed}.weights.h5")
    return cached_feature_net(build(seed), path, fit, batch_size)


def cached_feature_net(model, path, fit, batch_size):
    """model as a FeatureNet named after it ("logits", "pool_3" = its features), its weights loaded from path,
    or fit(model) first and saved there (atomically); net.model is the Keras model."""
    if os.path.isfile(path):
        model.load_weights(path)
    else:
        fit(model)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = path + ".tmp.weights.h5"
        model.save_weights(tmp)
        os.replace(tmp, path)
    fn = tf.function(lambda images: dict(zip(("logits", "pool_3"), model(images, training=False))))
    net = FeatureNet(model.name, fn, IMAGE_SIZE, batch_size)
    net.model, net.fingerprint = model, fingerprint(model)
    return net


def fingerprint(model):
    """The first 12 hex digits of the SHA-256 of model's weights (their float32 bytes in order): which trained
    classifier scored a result. Retraining on another machine can give other weights (float rounding differs)."""
    digest = hashlib.sha256()
    for w in model.get_weights():
        digest.update(np.ascontiguousarray(w, dtype=np.float32).tobytes())
    return digest.hexdigest()[:12]


def holdout_accuracy(net=None):
    """The classifier's accuracy on its 297 held-out digits (the grey-over-RGB format it scores)."""
    net = net or load_digits_classifier()
    images, labels = digits_arrays(IMAGE_SIZE)
    return accuracy(net.model, images[-HOLDOUT:].astype(np.float32) / 127.5 - 1.0, labels[-HOLDOUT:])
