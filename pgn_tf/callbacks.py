"""Training callbacks: progress, TensorBoard scalars, sample grids, checkpoints, stopping."""

import json
import math
import os
import sys
import time

import keras
import numpy as np
import tensorflow as tf

from pgn_tf import faults
from pgn_tf.diagnostics import DIAGNOSTICS
from pgn_tf.eval import evaluator as eval_lib
from pgn_tf.eval.stats import StatsError


def image_grid(images, cols=8):
    """[N, H, W, 3] in [-1, 1] -> one uint8 grid image [rows * H, cols * W, 3] (2-px gaps)."""
    x = np.clip((np.asarray(images) + 1.0) * 127.5 + 0.5, 0, 255).astype(np.uint8)
    n, h, w, c = x.shape
    cols = min(cols, n)
    rows = -(-n // cols)
    grid = np.zeros((rows * (h + 2) + 2, cols * (w + 2) + 2, c), np.uint8)
    for i in range(n):
        r, k = divmod(i, cols)
        grid[2 + r * (h + 2) : 2 + r * (h + 2) + h, 2 + k * (w + 2) : 2 + k * (w + 2) + w] = x[i]
    return grid


def tag(key):
    """A logged value's TensorBoard tag: train/ (losses, speed), pgn/ (f_hat, ||grad||), critic/ (DIAGNOSTICS), lr/."""
    if key.startswith(("f_hat", "grad_norm")):
        return f"pgn/{key}"
    if key in DIAGNOSTICS:
        return f"critic/{key}"
    if key.startswith("lr_"):
        return f"lr/{key[3:]}"
    return f"train/{key}"


def _step(model):
    return int(model.step.numpy())


class StepLogger(keras.callbacks.Callback):
    """Every `every` steps: TensorBoard scalars and one progress line (step, losses, steps/s, ETA) to stream (or none)."""

    def __init__(self, writer, total_steps, every, stream=sys.stdout):
        super().__init__()
        self.writer = writer
        self.total_steps = total_steps
        self.every = every
        self.stream = stream
        self._t0 = self._s0 = None

    def on_train_begin(self, logs=None):
        self._t0, self._s0 = time.perf_counter(), _step(self.model)

    def on_train_batch_end(self, batch, logs=None):
        step = _step(self.model)
        if step % self.every and step != self.total_steps:
            return
        elapsed = time.perf_counter() - self._t0
        rate = (step - self._s0) / max(elapsed, 1e-9)
        eta = (self.total_steps - step) / max(rate, 1e-9)
        logs = {k: float(np.mean(v)) for k, v in (logs or {}).items()}  # [1] under a multi-replica strategy
        lrs = {
            "lr_D": float(self.model.d_optimizer.learning_rate),
            "lr_G": float(self.model.g_optimizer.learning_rate),
        }
        with self.writer.as_default(step=step):
            for key, value in {**logs, **lrs, "steps_per_sec": rate}.items():
                tf.summary.scalar(tag(key), value)
        self.writer.flush()
        if self.stream is None:
            return
        loop = self.model.loop
        keys = ["d_loss", "g_loss"] + ["cr_loss"] * (loop.cr > 0) + ["penalty"] * bool(loop.penalty)
        keys += ["f_hat_mean", "accuracy", "augment_p", "ada_rt"]  # augment_p, ada_rt: with augmentation, ADA
        shown = " ".join(f"{k} {logs[k]:.4f}" for k in keys if k in logs)
        print(
            f"step {step}/{self.total_steps} {shown} | {rate:.2f} steps/s ETA {time.strftime('%H:%M:%S', time.gmtime(eta))}",
            file=self.stream,
            flush=True,
        )


class LipschitzMonitor(keras.callbacks.Callback):
    """Every `every` steps: mean and max of ||grad_x D_out(x)|| on real images, fakes and interpolates.

    D_out is what the loss sees (PGN's f_hat, GN's, the SN or raw critic), so
    the methods can be compared on the quantity the paper is about. The
    inputs are fixed for the whole run (real images and labels, latents,
    alphas; see `PGNGAN.lipschitz`), so the curves show the critic changing,
    not the sample. TensorBoard: lipschitz/{real,fake,interp}_{mean,max}.
    """

    def __init__(self, writer, every, real, labels, z, alpha, total_steps=None):
        super().__init__()
        self.writer = writer
        self.every = every
        self.inputs = (real, z, alpha, labels)
        self.total_steps = total_steps
        self._fn = None

    def measure(self):
        """{name: float} of the current critic and generator."""
        if self._fn is None:
            self._fn = tf.function(self.model.lipschitz, autograph=False)  # no tensor-dependent Python control flow
        with self.model.statistics_kept():
            return {k: float(v) for k, v in self._fn(*self.inputs).items()}

    def on_train_batch_end(self, batch, logs=None):
        step = _step(self.model)
        if step % self.every and step != self.total_steps:
            return
        with self.writer.as_default(step=step):
            for key, value in self.measure().items():
                tf.summary.scalar(f"lipschitz/{key}", value)
        self.writer.flush()


class Samples(keras.callbacks.Callback):
    """Grids of G and EMA-G on the fixed latents: TensorBoard images and DIR/samples/*.png."""

    def __init__(self, writer, sample_dir, fixed_z, fixed_y, every):
        super().__init__()
        self.writer = writer
        self.sample_dir = sample_dir
        self.fixed_z = fixed_z
        self.fixed_y = fixed_y
        self.every = every

    def write(self, step):
        os.makedirs(self.sample_dir, exist_ok=True)
        with self.writer.as_default(step=step), self.model.statistics_kept():
            for tag, ema in (("sample", False), ("sample_ema", True)):
                images = self.model.generate(self.fixed_z, self.fixed_y, ema=ema).numpy()
                grid = image_grid(images)
                tf.summary.image(tag, grid[None], step=step)
                path = os.path.join(self.sample_dir, f"{tag}_{step:07d}.png")
                tf.io.write_file(path + ".tmp", tf.io.encode_png(grid))
                os.replace(path + ".tmp", path)
        self.writer.flush()

    def on_train_batch_end(self, batch, logs=None):
        step = _step(self.model)
        if step == 1 or step % self.every == 0:
            self.write(step)


class Checkpointer(keras.callbacks.Callback):
    """Every `every` steps and at the end: save(manager, step) (the run's checked, atomic save)."""

    def __init__(self, save, manager, every):
        super().__init__()
        self.save = save
        self.manager = manager
        self.every = every

    def on_train_batch_end(self, batch, logs=None):
        step = _step(self.model)
        if step % self.every == 0:
            self.save(self.manager, step)

    def on_train_end(self, logs=None):
        self.save(self.manager, _step(self.model))


class DivergenceGuard(keras.callbacks.Callback):
    """Every step, first of the callbacks: the step's logged losses and statistics must be finite.

    The step's end already waits for the step (every callback reads its
    counter), so reading its few scalars adds no stall. On the first
    non-finite value: faults.Diverged with message_fn(step, what), raised
    before any callback of that step can sample, evaluate or save.
    """

    def __init__(self, message_fn):
        super().__init__()
        self.message_fn = message_fn

    def on_train_batch_end(self, batch, logs=None):
        bad = faults.nonfinite_logs(logs)
        if bad:
            shown = sorted(bad, key=lambda k: (k not in ("d_loss", "g_loss"), k))[:3]
            raise faults.Diverged(self.message_fn(_step(self.model), ", ".join(f"{k} {bad[k]}" for k in shown)))


class Preemption(keras.callbacks.Callback):
    """After SIGTERM / SIGINT (faults.StopSignals): save the step reached and stop with faults.Preempted.

    `save(step)` -> path saves the run. In a multi-worker run,
    `make_handler(save_fn, exit_fn)` gives TensorFlow's
    PreemptionCheckpointHandler, which agrees with the other workers on the
    step at which all of them save, then calls exit_fn; one step later than
    alone, so every worker has the signal by then.
    """

    def __init__(self, signals, save, make_handler=None):
        super().__init__()
        self.signals = signals
        self._save = save
        self.saved = None
        self.handler = make_handler(self.save, self.stop) if make_handler else None

    def save(self):
        self.saved = self._save(_step(self.model))

    def stop(self):
        raise faults.Preempted(self.signals.received, _step(self.model), self.saved)

    def on_train_batch_end(self, batch, logs=None):
        if self.handler is not None:
            self.handler.save_checkpoint_if_preempted()
        elif self.signals.received is not None:
            self.save()
            self.stop()


class StopAt(keras.callbacks.Callback):
    """Stops fit once the model's step reaches total_steps."""

    def __init__(self, total_steps):
        super().__init__()
        self.total_steps = total_steps

    def on_train_batch_end(self, batch, logs=None):
        if _step(self.model) >= self.total_steps:
            self.model.stop_training = True


class OperativeConfig(keras.callbacks.Callback):
    """After the first step, writes the operative gin config to the workdir and TensorBoard.

    An existing operative_config.gin that differs (a resumed run with other
    bindings) is kept; the new one goes to operative_config.<step>.gin.
    """

    def __init__(self, writer, workdir, config_fn):
        super().__init__()
        self.writer = writer
        self.workdir = workdir
        self.config_fn = config_fn
        self.done = False

    def on_train_batch_end(self, batch, logs=None):
        if self.done:
            return
        self.done = True
        text = self.config_fn()
        path = os.path.join(self.workdir, "operative_config.gin")
        if os.path.exists(path):
            with open(path) as f:
                if f.read() != text:
                    path = os.path.join(self.workdir, f"operative_config.{_step(self.model)}.gin")
        with open(path + ".tmp", "w") as f:
            f.write(text)
        os.replace(path + ".tmp", path)
        with self.writer.as_default(step=_step(self.model)):
            tf.summary.text("operative_config", "    " + text.replace("\n", "\n    "))
        self.writer.flush()


class Evaluate(keras.callbacks.Callback):
    """Every `every` steps: the evaluator's scores of G and EMA-G to TensorBoard and DIR/eval.jsonl; the best checkpoint.

    Scores of EMA-G carry an "_ema" suffix. TensorBoard tags name the feature
    network (eval_inception/FID, eval_digits_classifier/recall), so
    digits-classifier scores are never mistaken for Inception scores.
    best_by (any of evaluator.BEST_BY) picks the checkpoint kept in
    best_manager: lowest FID / KID, highest IS / precision / recall /
    density / coverage. best_metric holds the best score so far oriented so
    that lower is better (the score, or minus it for a higher-is-better one),
    so one variable initialised to +inf serves every direction.

    Raises:
      ValueError: best_by is not a score name.
      StatsError: the evaluator cannot give best_by (e.g. recall against a
        reference without real activations), before any training step.
    """

    def __init__(self, evaluator, every, writer, workdir, save, best_manager, best_metric, best_by="FID"):
        super().__init__()
        self.sign = 1.0 if eval_lib.direction(best_by) == "min" else -1.0
        available = getattr(evaluator, "available", None)
        if available is not None and best_by.removesuffix("_ema") not in available():
            name = best_by.removesuffix("_ema")
            why = evaluator.omitted().get(name, "it is not among the evaluation's metrics")
            raise StatsError(f"best_by={best_by!r} cannot be kept: {name} is not computed ({why}).")
        self.save = save
        self.evaluator = evaluator
        self.every = every
        self.writer = writer
        self.path = os.path.join(workdir, "eval.jsonl")
        self.best_manager = best_manager
        self.best_metric = best_metric
        self.best_by = best_by
        self._told = False

    def on_train_batch_end(self, batch, logs=None):
        step = _step(self.model)
        if step % self.every:
            return
        t0 = time.perf_counter()
        scores, omitted = {"step": step}, {}
        with self.model.statistics_kept():
            for suffix, ema in (("", False), ("_ema", True)):
                result = self.evaluator(self.model, ema)
                scores.update({f"{k}{suffix}": v for k, v in result.items() if isinstance(v, float)})
                omitted.update(result.get("omitted", {}))
        scores.update(self.evaluator.described())
        if "diversity_images" in result:
            scores["diversity_images"] = result["diversity_images"]
        if omitted:
            scores["omitted"] = omitted
        scores["seconds"] = round(time.perf_counter() - t0, 1)
        with self.writer.as_default(step=step):
            for key, value in scores.items():
                if isinstance(value, float) and key != "seconds":
                    tf.summary.scalar(f"eval_{scores['feature_net']}/{key}", value)
        self.writer.flush()
        # JSON has no NaN: a non-finite score is written as null.
        finite = {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in scores.items()}
        with open(self.path, "a") as f:
            f.write(json.dumps(finite, allow_nan=False) + "\n")
        keys = [f"{m}{s}" for s in ("", "_ema") for m in ("IS", "FID", "precision", "recall")]
        shown = " ".join(f"{k} {scores[k]:.3f}" for k in dict.fromkeys([*keys, self.best_by]) if k in scores)
        print(f"eval step {step} ({scores['feature_net']}, {scores['num_images']} images) {shown}", flush=True)
        if omitted and not self._told:
            self._told = True
            for name, why in omitted.items():
                print(f"eval: no {name}: {why}.", flush=True)
        if finite.get(self.best_by) is not None and self.sign * scores[self.best_by] < float(self.best_metric.numpy()):
            self.best_metric.assign(self.sign * scores[self.best_by])
            self.save(self.best_manager, step)
