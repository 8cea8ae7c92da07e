"""Scores a trained workdir: python -m pgn_tf.evaluate --workdir=DIR [--checkpoint=best|latest|PATH] [--ema] ...

Rebuilds the models from DIR's operative gin config, restores the checkpoint
and prints one JSON line: IS, IS_std, FID (and KID, KID_std when the
reference has real activations), num_images, feature_net, checkpoint, step.
"""

import functools
import glob
import json
import os
import re
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags, logging

from pgn_tf.cli import UsageError, first_line, parse_gin, user_errors

WORKDIR = flags.DEFINE_string("workdir", None, "A training workdir (with operative_config.gin and checkpoints/).")
CHECKPOINT = flags.DEFINE_string("checkpoint", "latest", "best, latest, or a checkpoint path (DIR/checkpoints/ckpt-N).")
EMA = flags.DEFINE_bool("ema", False, "Score the EMA generator instead of G.")
NUM_IMAGES = flags.DEFINE_integer("num_images", None, "Generated images (default: the run's num_images).")
FID_STATS = flags.DEFINE_string("fid_stats", None, "Reference statistics .npz (default: the run's).")
INCEPTION_PATH = flags.DEFINE_string("inception_path", None, "A local Inception SavedModel / TF-Hub module folder.")
GIN_PARAMS = flags.DEFINE_multi_string("gin_param", [], "Extra gin bindings applied after the run's config.")


def operative_config(workdir):
    """The run's newest operative config (operative_config.<step>.gin after a resume with other bindings)."""
    numbered = glob.glob(os.path.join(workdir, "operative_config.*.gin"))
    if numbered:
        return max(numbered, key=lambda p: int(re.findall(r"\.(\d+)\.gin$", p)[0]))
    path = os.path.join(workdir, "operative_config.gin")
    if not os.path.isfile(path):
        raise UsageError(f"{workdir} has no operative_config.gin; is it a training workdir (--workdir)?")
    return path


def run(workdir, checkpoint="latest", ema=False, num_images=None, fid_stats=None, inception_path=None, params=()):
    """Evaluates and prints the JSON line; returns the exit code (2 with one line on stderr for bad input)."""
    try:
        if not workdir or not os.path.isdir(workdir):
            raise UsageError(f"workdir {workdir} does not exist; pass the folder a training run wrote (--workdir).")
        if num_images is not None and num_images < 10:
            raise UsageError(f"--num_images must be at least 10 (IS uses 10 splits), got {num_images}.")
        parse_gin([operative_config(workdir)], list(params))
        from pgn_tf import train_lib
        from pgn_tf.eval import inception

        try:
            exp = train_lib.train_and_evaluate(workdir, train=False)
            path = exp.restore(checkpoint)
            if path is None:
                raise UsageError(f"no checkpoint in {exp.manager.directory}; train first.")
            feature_fn = functools.partial(inception.load_inception, path=inception_path) if inception_path else None
            scorer = exp.evaluator(num_images, fid_stats, feature_fn)
            result = scorer(exp.gan, ema)
        except user_errors() as e:
            raise UsageError(first_line(e)) from None
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        return 2
    result.update(checkpoint=path, step=int(exp.gan.step.numpy()), ema=ema)
    print(json.dumps(result), flush=True)
    return 0


def main(argv):
    if len(argv) > 1:
        print(f"error: unexpected arguments {argv[1:]}.", file=sys.stderr)
        return 2
    logging.set_verbosity(logging.WARNING)
    return run(
        WORKDIR.value, CHECKPOINT.value, EMA.value, NUM_IMAGES.value, FID_STATS.value, INCEPTION_PATH.value,
        GIN_PARAMS.value,
    )  # fmt: skip


if __name__ == "__main__":
    app.run(lambda argv: sys.exit(main(argv)))
