"""The MNIST classifier that scores real handwriting: its fixed split, its held-out accuracy, its cache."""

import os

import numpy as np

from pgn_tf.eval import mnist_classifier


def test_split_is_4000_training_and_1000_held_out_real_digits_balanced():
    x_train, y_train, x_held, y_held = mnist_classifier.split()
    assert x_train.shape == (4000, 32, 32, 3) and x_held.shape == (1000, 32, 32, 3)
    assert np.array_equal(np.bincount(y_train), [400] * 10) and np.array_equal(np.bincount(y_held), [100] * 10)
    assert x_train.min() == -1.0 and x_train.max() == 1.0
    flat = {im.tobytes() for im in x_train[..., 0]}
    assert not any(im.tobytes() in flat for im in x_held[..., 0])  # no held-out digit is trained on


def test_held_out_accuracy_and_the_cache(tmp_path):
    net = mnist_classifier.load_mnist_classifier(str(tmp_path))  # trained here: the tests' cache has the shipped one
    accuracy = mnist_classifier.holdout_accuracy(net)
    assert accuracy >= 0.97, accuracy
    assert os.listdir(tmp_path) == [f"mnist_classifier_v{mnist_classifier.VERSION}_seed0.weights.h5"]
    again = mnist_classifier.load_mnist_classifier(str(tmp_path))  # loaded, not trained again: the same outputs
    x = mnist_classifier.split()[2][:64]
    (logits, pool), (logits_again, _) = net(x), again(x)
    np.testing.assert_array_equal(logits, logits_again)
    assert pool.shape == (64, 128) and net.name == "mnist_classifier"
    # The other tests score with the published tables' classifier (docs/benchmark/stacked_mnist), shipped.
    assert mnist_classifier.load_mnist_classifier().fingerprint == "dcb566aa8633"
