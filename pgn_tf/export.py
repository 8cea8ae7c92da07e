"""Exports a generator for TF Serving: python -m pgn_tf.export --workdir=DIR [--checkpoint=best|latest|PATH] [--raw]

Writes a SavedModel of the EMA generator (--raw: G) to
<export_dir>/<step>/, the versioned layout TF Serving loads, with two
signatures:
  serving_default: z float32 [N, z_dim] (+ labels int32 [N] for conditional
    models) -> images uint8 [N, H, W, 3];
  generate: seed int64 [], count int32 [] -> images, z (and labels): for
    clients without a random source; the same seed gives the same images.
BatchNorm runs in inference mode (its moving statistics), so an image depends
only on its own latent, unlike the paper's sampling (batch statistics).
"""

import os
import shutil
import sys

import keras
import tensorflow as tf
from absl import flags

from pgn_tf.cli import UsageError, load_run, start


def _to_uint8(x):
    x = tf.cast(x, tf.float32)  # a mixed-precision G gives (b)float16
    return tf.cast(tf.clip_by_value(tf.round((x + 1.0) * 127.5), 0.0, 255.0), tf.uint8)


def archive(generator, z_dim, num_classes=None):
    """A keras.export.ExportArchive of the generator with the two signatures (inference-mode BatchNorm)."""
    z_dim = int(z_dim)
    arc = keras.export.ExportArchive()
    arc.track(generator)
    z_spec = tf.TensorSpec([None, z_dim], tf.float32, name="z")
    seed_spec, count_spec = tf.TensorSpec([], tf.int64, name="seed"), tf.TensorSpec([], tf.int32, name="count")

    def latents(seed, count):
        return tf.random.stateless_normal([count, z_dim], seed=tf.stack([seed, tf.constant(0, tf.int64)]))

    if num_classes is None:
        arc.add_endpoint(
            "serving_default", lambda z: {"images": _to_uint8(generator(z, training=False))}, input_signature=[z_spec]
        )

        def generate(seed, count):
            z = latents(seed, count)
            return {"images": _to_uint8(generator(z, training=False)), "z": z}

    else:
        y_spec = tf.TensorSpec([None], tf.int32, name="labels")
        arc.add_endpoint(
            "serving_default",
            lambda z, labels: {"images": _to_uint8(generator([z, labels], training=False))},
            input_signature=[z_spec, y_spec],
        )

        def generate(seed, count):
            z = latents(seed, count)
            y_seed = tf.stack([seed, tf.constant(1, tf.int64)])
            labels = tf.random.stateless_uniform([count], seed=y_seed, maxval=num_classes, dtype=tf.int32)
            return {"images": _to_uint8(generator([z, labels], training=False)), "z": z, "labels": labels}

    arc.add_endpoint("generate", generate, input_signature=[seed_spec, count_spec])
    return arc


def export(exp, export_dir, raw=False):
    """Writes export_dir/<step>/ atomically (a temporary folder renamed at the end); returns its path.

    Raises:
      UsageError: that version exists already.
    """
    gan = exp.gan
    step = int(gan.step.numpy())
    target = os.path.join(export_dir, str(step))
    if os.path.exists(target):
        raise UsageError(f"{target} exists already; remove it or pass another --export_dir.")
    arc = archive(gan.generator if raw else gan.ema_generator, gan.z_dim, gan.num_classes)
    os.makedirs(export_dir, exist_ok=True)
    tmp = os.path.join(export_dir, f".tmp-{step}")
    shutil.rmtree(tmp, ignore_errors=True)
    arc.write_out(tmp, verbose=False)
    os.replace(tmp, target)
    return target


def run(workdir, checkpoint="latest", raw=False, export_dir=None, params=()):
    """Exports; prints the version folder; returns the exit code (2 with one line on stderr for bad input)."""
    try:
        exp, path = load_run(workdir, checkpoint, params)
        export_dir = export_dir or os.path.join(workdir, "export")
        try:
            target = export(exp, export_dir, raw)
        except OSError as e:
            raise UsageError(
                f"cannot write the export to {export_dir} ({e.strerror}); pass another --export_dir."
            ) from None
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        return 2
    print(f"Exported {'G' if raw else 'EMA-G'} of {path} to {target}", flush=True)
    return 0


def define_flags():
    """The command-line flags (defined only when run as a program, so the tools import side by side)."""
    flags.DEFINE_string("workdir", None, "A training workdir.")
    flags.DEFINE_string("checkpoint", "latest", "best, latest, or a checkpoint path.")
    flags.DEFINE_bool("raw", False, "Export G instead of its EMA.")
    flags.DEFINE_string("export_dir", None, "Where versions go (default DIR/export).")
    flags.DEFINE_multi_string("gin_param", [], "Extra gin bindings applied after the run's config.")


def cli_main():
    """The program (python -m and the console script)."""
    define_flags()
    f = flags.FLAGS
    start(lambda: run(f.workdir, f.checkpoint, f.raw, f.export_dir, f.gin_param))


if __name__ == "__main__":
    cli_main()
