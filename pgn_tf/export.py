"""Exports a generator for TF Serving: python -m pgn_tf.export --workdir=DIR [--checkpoint=best|latest|PATH] [--raw]

Writes a SavedModel of the EMA generator (--raw: G) to
<export_dir>/<step>/, the versioned layout TF Serving loads, with three
signatures:
  serving_default: z float32 [N, z_dim] (+ labels int32 [N] for conditional
    models) -> images uint8 [N, H, W, 3];
  generate: seed int64 [], count int32 [] -> images, z (and labels): for
    clients without a random source; the same seed gives the same images;
  limits: () -> max_count, z_dim, num_classes (0: unconditional).
A request for more than --max_count images (count, or the rows of z;
default 256), a z whose width is not z_dim or a label outside
[0, num_classes) fails with INVALID_ARGUMENT from a check in the graph,
before anything is allocated for it.
BatchNorm runs in inference mode (its moving statistics), so an image depends
only on its own latent, unlike the paper's sampling (batch statistics).
"""

from pgn_tf import console

console.setup_process(__name__)  # before anything imports TensorFlow

import os
import shutil
import sys

import keras
import tensorflow as tf
from absl import flags

from pgn_tf.cli import UsageError, start


def _to_uint8(x):
    x = tf.cast(x, tf.float32)  # a mixed-precision G gives (b)float16
    return tf.cast(tf.clip_by_value(tf.round((x + 1.0) * 127.5), 0.0, 255.0), tf.uint8)


MAX_COUNT = 256  # images per request, unless --max_count says otherwise


def _checked(value, checks):
    """`value` once every (condition, message, data) holds: each a tf.debugging.Assert it depends on.

    The checks run before anything that uses `value`, on every device, so a
    request outside the bounds never allocates its batch (and no device's
    gather decides what an out-of-range label does).
    """
    asserts = [tf.debugging.Assert(ok, [message, *data], summarize=8) for ok, message, data in checks]
    with tf.control_dependencies(asserts):
        return tf.identity(value)


def _count_check(count, max_count, what):
    ok = tf.logical_and(count >= 1, count <= max_count)
    return ok, f"{what} must be in [1, {max_count}] (--max_count of the export); got", [count]


def _checked_z(z, z_dim, max_count):
    shape = tf.shape(z)
    # shape[1:] is empty for a rank-0 or rank-1 z: the rank is checked with it.
    width_ok = tf.logical_and(tf.equal(tf.size(shape), 2), tf.reduce_all(tf.equal(shape[1:], z_dim)))
    rows = tf.reduce_prod(shape[:1])  # 1 for a rank-0 z, which fails the width check
    return _checked(
        z,
        [
            (width_ok, f"z must be [N, {z_dim}] (z_dim of this generator); got shape", [shape]),
            _count_check(rows, max_count, "the rows of z"),
        ],
    )


def _checked_labels(labels, z, num_classes):
    in_range = tf.reduce_all(tf.logical_and(labels >= 0, labels < num_classes))
    one_each = tf.logical_and(
        tf.equal(tf.rank(labels), 1), tf.reduce_all(tf.equal(tf.shape(labels)[:1], tf.shape(z)[:1]))
    )
    return _checked(
        labels,
        [
            (in_range, f"labels must be in [0, {num_classes}) (num_classes); got", [labels]),
            (one_each, "labels must hold one class per row of z; got shapes", [tf.shape(labels), tf.shape(z)]),
        ],
    )


def archive(generator, z_dim, num_classes=None, max_count=MAX_COUNT):
    """A keras.export.ExportArchive of the generator with its signatures (inference-mode BatchNorm).

    Args:
      max_count: the most images one request may ask for (generate's count,
        serving_default's rows of z); the limits signature reports it.
    """
    z_dim, max_count = int(z_dim), int(max_count)
    arc = keras.export.ExportArchive()
    arc.track(generator)
    z_spec = tf.TensorSpec([None, z_dim], tf.float32, name="z")
    seed_spec, count_spec = tf.TensorSpec([], tf.int64, name="seed"), tf.TensorSpec([], tf.int32, name="count")

    def latents(seed, count):
        count = _checked(count, [_count_check(count, max_count, "count")])
        return count, tf.random.stateless_normal([count, z_dim], seed=tf.stack([seed, tf.constant(0, tf.int64)]))

    if num_classes is None:
        arc.add_endpoint(
            "serving_default",
            lambda z: {"images": _to_uint8(generator(_checked_z(z, z_dim, max_count), training=False))},
            input_signature=[z_spec],
        )

        def generate(seed, count):
            _, z = latents(seed, count)
            return {"images": _to_uint8(generator(z, training=False)), "z": z}

    else:
        y_spec = tf.TensorSpec([None], tf.int32, name="labels")

        def serve(z, labels):
            z = _checked_z(z, z_dim, max_count)
            return {"images": _to_uint8(generator([z, _checked_labels(labels, z, num_classes)], training=False))}

        arc.add_endpoint("serving_default", serve, input_signature=[z_spec, y_spec])

        def generate(seed, count):
            count, z = latents(seed, count)
            y_seed = tf.stack([seed, tf.constant(1, tf.int64)])
            labels = tf.random.stateless_uniform([count], seed=y_seed, maxval=num_classes, dtype=tf.int32)
            return {"images": _to_uint8(generator([z, labels], training=False)), "z": z, "labels": labels}

    arc.add_endpoint("generate", generate, input_signature=[seed_spec, count_spec])
    limits = {"max_count": max_count, "z_dim": z_dim, "num_classes": num_classes or 0}
    arc.add_endpoint("limits", lambda: {k: tf.constant(v, tf.int32) for k, v in limits.items()}, input_signature=[])
    return arc


def export(gan, export_dir, raw=False, max_count=MAX_COUNT):
    """Writes export_dir/<step>/ atomically (a temporary folder renamed at the end); returns its path.

    Args:
      gan: the trained PGNGAN (e.g. `train_lib.from_workdir(...)[0].gan`); EMA-G unless raw.
      max_count: the most images one request may ask for (see `archive`).

    Raises:
      UsageError: that version exists already.
    """
    step = int(gan.step.numpy())
    target = os.path.join(export_dir, str(step))
    if os.path.exists(target):
        raise UsageError(f"{target} exists already; remove it or pass another --export_dir.")
    arc = archive(gan.generator if raw else gan.ema_generator, gan.z_dim, gan.num_classes, max_count)
    os.makedirs(export_dir, exist_ok=True)
    tmp = os.path.join(export_dir, f".tmp-{step}")
    shutil.rmtree(tmp, ignore_errors=True)
    arc.write_out(tmp, verbose=False)
    os.replace(tmp, target)
    return target


def run(workdir, checkpoint="latest", raw=False, export_dir=None, params=(), max_count=MAX_COUNT):
    """Exports; prints the version folder; returns the exit code (2 with one line on stderr for bad input).

    Reads the checkpoint without the workdir's lock, so it works while a run
    trains there: the checkpoint list names a checkpoint only once its files
    are complete.
    """
    try:
        if isinstance(max_count, bool) or not isinstance(max_count, int) or max_count < 1:
            raise UsageError(f"--max_count must be a positive integer (images per request), got {max_count!r}.")
        from pgn_tf import train_lib

        built, path = train_lib.from_workdir(workdir, checkpoint, params)
        export_dir = export_dir or os.path.join(workdir, "export")
        try:
            target = export(built.gan, export_dir, raw, max_count)
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
    flags.DEFINE_integer("max_count", MAX_COUNT, "The most images one request may ask for (count, or rows of z).")


def cli_main():
    """The program (python -m and the console script)."""
    define_flags()
    f = flags.FLAGS
    start(lambda: run(f.workdir, f.checkpoint, f.raw, f.export_dir, f.gin_param, f.max_count))


if __name__ == "__main__":
    cli_main()
