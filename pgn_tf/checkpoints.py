"""A run's checkpoint and its lifecycle: what it holds, where it is kept, restoring, checked saving.

One tf.train.Checkpoint over G, EMA-G, the critic, both optimizers, the
step, the sample grids' latents and the best score (names fixed: existing
checkpoints restore by them), kept in DIR/checkpoints (the three newest) and
DIR/checkpoints/best (the best-scoring one).
"""

import contextlib
import os

import keras
import numpy as np
import tensorflow as tf

from pgn_tf import distribute, faults
from pgn_tf.errors import CheckpointError, first_line

SAMPLES = 64  # images in each sample grid


def _damaged_list(directory, e):
    return CheckpointError(
        f"cannot read the checkpoint list {os.path.join(directory, 'checkpoint')} ({first_line(e)[:120]}); "
        "move it aside with the checkpoints it names to start afresh, or use a new --workdir."
    )


def _manager(checkpoint, directory, max_to_keep):
    """A CheckpointManager, or CheckpointError if its directory's checkpoint list is damaged (it reads it)."""
    try:
        return tf.train.CheckpointManager(checkpoint, directory, max_to_keep=max_to_keep)
    except Exception as e:  # noqa: BLE001
        raise _damaged_list(directory, e) from None


class Checkpoints:
    """The run's checkpoint and its managers (reads the checkpoint lists; writes nothing until `save`).

    Made in the strategy's scope, as the variables it adds are.

    Attributes:
      gan: the PGNGAN whose state it holds.
      checkpoint: the tf.train.Checkpoint.
      fixed_z, fixed_y: the latents (and labels) of the sample grids (seeded).
      best_metric: the best score so far, oriented so that lower is better.
      directory: DIR/checkpoints, the chief's checkpoints (every worker resumes from them).
      manager, best_manager: the run's checkpoints (this worker's own in a
        multi-worker run) and the best-scoring one.
    """

    def __init__(self, gan, workdir, strategy):
        loop = gan.loop
        rng = np.random.default_rng(loop.seed)
        self.gan = gan
        self.fixed_z = tf.Variable(rng.standard_normal((SAMPLES, loop.z_dim)).astype(np.float32), trainable=False)
        self.fixed_y = tf.Variable(np.arange(SAMPLES, dtype=np.int32) % (loop.num_classes or 1), trainable=False)
        self.best_metric = tf.Variable(np.inf, dtype=tf.float64, trainable=False)
        self.checkpoint = tf.train.Checkpoint(
            generator=gan.generator, ema_generator=gan.ema_generator, critic=gan.discriminator.critic,
            d_optimizer=gan.d_optimizer, g_optimizer=gan.g_optimizer, step=gan.step, fixed_z=self.fixed_z,
            fixed_y=self.fixed_y, best_metric=self.best_metric,
        )  # fmt: skip
        if gan.ada is not None:  # only then, so that runs without ADA keep restoring checkpoints made before it
            self.checkpoint.ada = gan.ada
        chief = distribute.is_chief(strategy)
        self.directory = os.path.join(workdir, "checkpoints")
        # Every worker of a multi-worker run saves (TensorFlow requires it); only the chief's are the run's.
        own = self.directory
        if not chief:
            own = os.path.join(workdir, "workers", str(distribute.worker_id(strategy)), "checkpoints")
        self.manager = _manager(self.checkpoint, own, max_to_keep=3 if chief else 1)
        self.best_manager = _manager(self.checkpoint, os.path.join(self.directory, "best"), max_to_keep=1)

    def _variables(self):
        """(name, variable) of everything a checkpoint holds that training changes: models and optimizer state."""
        gan = self.gan
        for owner, obj in (("generator", gan.generator), ("ema_generator", gan.ema_generator),
                           ("critic", gan.discriminator.critic), ("d_optimizer", gan.d_optimizer),
                           ("g_optimizer", gan.g_optimizer)):  # fmt: skip
            for v in obj.variables:
                yield f"{owner}/{v.path}", v

    def latest(self):
        """The chief's newest saved checkpoint that is still on disk, and the ones before it (newest first).

        Raises:
          CheckpointError: the checkpoint list (DIR/checkpoints/checkpoint) cannot be read.
        """
        try:
            state = tf.train.get_checkpoint_state(self.directory)
        except Exception as e:  # noqa: BLE001  (a damaged list raises parse errors of several kinds)
            raise _damaged_list(self.directory, e) from None
        paths = [] if state is None else list(state.all_model_checkpoint_paths or [state.model_checkpoint_path])
        paths = [p for p in paths if tf.io.gfile.exists(p + ".index")]  # one moved aside is skipped
        return sorted(paths, key=lambda p: int(p.rsplit("-", 1)[1]), reverse=True)

    def restore(self, which="latest"):
        """Restores "latest", "best" or a checkpoint path; returns the path, or None for latest with no checkpoint.

        Raises:
          CheckpointError: no such checkpoint, or one that cannot be restored
            (one line naming it and the ways out; nothing is changed).
        """
        earlier = []
        if which == "latest":
            # Every worker resumes from the chief's checkpoints (a filesystem all hosts share).
            paths = self.latest()
            if not paths:
                return None
            path, earlier = paths[0], paths[1:]
        elif which == "best":
            path = tf.train.latest_checkpoint(self.best_manager.directory)
            if path is None:
                raise CheckpointError(f"no best checkpoint in {self.best_manager.directory} (no evaluation ran yet).")
        else:
            path = which
        if not tf.io.gfile.exists(path + ".index"):
            raise CheckpointError(f"checkpoint {path} does not exist (want best, latest or a path like DIR/ckpt-1000).")
        status = None
        try:
            status = self.checkpoint.restore(path)
            status.assert_existing_objects_matched()
        except Exception as e:  # noqa: BLE001  (damage surfaces as OpError, IndexError, ValueError, AssertionError)
            if status is not None:
                status.expect_partial()  # no warnings about the values left unrestored
            mismatch = self._precision_mismatch(path)
            if mismatch:
                raise CheckpointError(f"checkpoint {path} {mismatch}, or use a new --workdir.") from None
            way_out = (
                f"move {path}.* aside to resume from {os.path.basename(earlier[0])}"
                if earlier
                else f"move {path}.* aside to start afresh"
            )
            raise CheckpointError(
                f"cannot restore checkpoint {path} ({first_line(e)[:200]}); {way_out}, or use a new --workdir."
            ) from None
        return path

    def _precision_mismatch(self, path):
        """Why `path` cannot resume in this run's precision, or None: float16 runs keep a loss scale.

        float32 and mixed_bfloat16 runs hold the same variables, so a run can
        switch between them; mixed_float16 wraps both optimizers in a
        LossScaleOptimizer, whose checkpoint the others cannot read.
        """
        try:
            saved_fp16 = any(name.startswith("d_optimizer/dynamic_scale/") for name, _ in tf.train.list_variables(path))
        except Exception:  # noqa: BLE001  (a damaged file: the generic line says so)
            return None
        fp16 = isinstance(self.gan.d_optimizer, keras.optimizers.LossScaleOptimizer)
        if saved_fp16 and not fp16:
            return (
                "was written by a mixed_float16 run (its optimizers keep a loss scale); resume it with "
                "--gin_param=\"train_and_evaluate.precision='mixed_float16'\""
            )
        if fp16 and not saved_fp16:
            return (
                "was written by a float32 or mixed_bfloat16 run (no loss scale); resume it in one of those precisions"
            )
        return None

    def save(self, manager, step):
        """Saves the run at `step` through `manager` (atomic), after checking that every saved tensor is finite.

        Raises:
          faults.Diverged: a weight or optimizer slot is not finite (nothing is written).
          faults.DiskFull: no space left; the checkpoints saved before are intact.
        """
        bad = faults.nonfinite(self._variables())
        if bad:
            name, count = bad[0]
            raise faults.Diverged(
                self.diverged_message(step, f"{len(bad)} tensors hold non-finite values, e.g. {count} in {name}")
            )
        try:
            return manager.save(checkpoint_number=step)
        except (tf.errors.OpError, OSError) as e:
            if not faults.is_disk_full(e):
                raise
            # The manager lists a checkpoint only once it is complete; remove what this save left behind.
            prefix = os.path.join(manager.directory, f"ckpt-{step}")
            if prefix not in manager.checkpoints:
                for leftover in tf.io.gfile.glob(prefix + ".*") + tf.io.gfile.glob(prefix + "_temp*"):
                    with contextlib.suppress(tf.errors.OpError):
                        (tf.io.gfile.rmtree if tf.io.gfile.isdir(leftover) else tf.io.gfile.remove)(leftover)
            last = manager.latest_checkpoint or "none yet"
            raise faults.DiskFull(
                f"no space left on the device while saving {prefix}; the saved checkpoints are intact "
                f"(latest: {last}). Free some space and run the same command to resume",
            ) from None

    def diverged_message(self, step, what):
        last = self.latest()
        resume = (
            f"the last finite checkpoint is {os.path.basename(last[0])}; lower the learning rates (lr_D, lr_G) or "
            "add a penalty, then run again to resume from it, or use a new --workdir"
            if last
            else "no checkpoint was saved yet; lower the learning rates (lr_D, lr_G) or add a penalty and run again"
        )
        return f"training diverged at step {step} ({what}); {resume}."
