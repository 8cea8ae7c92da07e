"""Smoke run: every architecture at a small width, G(z) through PGN(D), one gradient each.

python -m pgn_tf.smoke [--width 0.0625] [--batch 4]
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import tensorflow as tf

from pgn_tf import PGNDiscriminator, losses, models


def run(arch, width, batch, z_dim=128):
    g = models.build_generator(arch, z_dim=z_dim, width=width)
    d = PGNDiscriminator(models.build_critic(arch, width=width))
    z = tf.random.normal((batch, z_dim))
    labels = tf.random.uniform((batch,), 0, 10, tf.int32) if models.is_conditional(arch) else None
    start = time.perf_counter()
    with tf.GradientTape(persistent=True) as tape:
        fake = g(z if labels is None else [z, labels], training=True)
        out = d.normalize(fake, labels=labels, training=True)
        g_loss = losses.hinge.generator(out.f_hat)
    g_grads = tape.gradient(g_loss, g.trainable_variables)
    d_grads = tape.gradient(g_loss, d.trainable_variables)
    finite = all(np.all(np.isfinite(tf.convert_to_tensor(t).numpy())) for t in g_grads + d_grads)
    f_hat = out.f_hat.numpy()
    print(
        f"{arch:11s} images {tuple(fake.shape)}  f_hat [{f_hat.min():+.4f}, {f_hat.max():+.4f}]  "
        f"||1 - grad|| {out.grad_norm.numpy().mean():8.3f}  grads finite {finite}  "
        f"{time.perf_counter() - start:5.2f}s"
    )
    return finite and np.all(np.abs(f_hat) <= 1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=float, default=0.0625)
    parser.add_argument("--batch", type=int, default=4)
    args = parser.parse_args()
    keras.utils.set_random_seed(0)
    ok = all([run(arch, args.width, args.batch) for arch in models.ARCHS])  # noqa: C419 (run every arch)
    print("smoke run", "OK" if ok else "FAILED")
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
