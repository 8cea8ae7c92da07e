"""Scores a trained workdir: python -m pgn_tf.evaluate --workdir=DIR [--checkpoint=best|latest|PATH] [--ema] ...

Rebuilds the models from DIR's operative gin config, restores the checkpoint
and prints one JSON line: IS, IS_std, FID and, when the reference keeps real
activations, KID, KID_std, precision, recall (k = 3), density and coverage
(k = 5, on the first diversity_images samples against the cached real k-NN
radii); "omitted" names any metric the reference cannot give and why; then
num_images, feature_net (and, for a trained digits or MNIST classifier,
feature_net_fingerprint: which weights scored), checkpoint, step, ema.
"""

from pgn_tf import console

console.setup_process(__name__)  # before anything imports TensorFlow

import functools
import json
import os
import sys

from absl import flags

from pgn_tf.cli import UsageError, first_line, start, user_errors


def run(
    workdir, checkpoint="latest", ema=False, num_images=None, fid_stats=None, inception_path=None, params=(),
    save_images=None,
):  # fmt: skip
    """Evaluates and prints the JSON line; returns the exit code (2 with one line on stderr for bad input).

    save_images: a folder (that must not exist yet) for the scored samples as PNG files, for other tools.
    """
    try:
        if num_images is not None and num_images < 10:
            raise UsageError(f"--num_images must be at least 10 (IS uses 10 splits), got {num_images}.")
        if save_images and os.path.exists(save_images):
            raise UsageError(f"--save_images {save_images} exists already; pass a new folder.")
        if save_images and not os.access(os.path.dirname(os.path.abspath(save_images)) or "/", os.W_OK):
            raise UsageError(f"--save_images {save_images}: its parent folder does not exist or is not writable.")
        from pgn_tf import train_lib
        from pgn_tf.eval import evaluator, inception

        built, path = train_lib.from_workdir(workdir, checkpoint, params)

        feature_fn = functools.partial(inception.load_inception, path=inception_path) if inception_path else None
        try:
            scorer = evaluator.for_run(built.config, workdir, num_images, fid_stats, feature_fn)
            result = scorer(built.gan, ema, save_images=save_images)
        except user_errors() as e:
            raise UsageError(first_line(e)) from None
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        return 2
    result.update(checkpoint=path, step=int(built.gan.step.numpy()), ema=ema)
    if save_images:
        result["images"] = os.path.abspath(save_images)
    print(json.dumps(result), flush=True)
    return 0


def define_flags():
    """The command-line flags (defined only when run as a program, so the tools import side by side)."""
    flags.DEFINE_string("workdir", None, "A training workdir (with operative_config.gin and checkpoints/).")
    flags.DEFINE_string("checkpoint", "latest", "best, latest, or a checkpoint path (DIR/checkpoints/ckpt-N).")
    flags.DEFINE_bool("ema", False, "Score the EMA generator instead of G.")
    flags.DEFINE_integer("num_images", None, "Generated images (default: the run's num_images).")
    flags.DEFINE_string("fid_stats", None, "Reference statistics .npz (default: the run's).")
    flags.DEFINE_string("inception_path", None, "A local Inception SavedModel / TF-Hub module folder.")
    flags.DEFINE_multi_string("gin_param", [], "Extra gin bindings applied after the run's config.")
    flags.DEFINE_string("save_images", None, "Also write the scored samples to this new folder (000000.png, ...).")


def cli_main():
    """The program (python -m and the console script)."""
    define_flags()
    f = flags.FLAGS
    start(
        lambda: run(
            f.workdir, f.checkpoint, f.ema, f.num_images, f.fid_stats, f.inception_path, f.gin_param, f.save_images
        )
    )


if __name__ == "__main__":
    cli_main()
