"""The critic's diagnostics: what every critic step logs, for every method, beside the losses.

Every log_every steps, for every method (TensorBoard critic/): the raw output f
on reals and fakes, the raw input-gradient norm (beside pgn/grad_norm, PGN's
denominator), the share of samples on their side (f_hat > 0 for reals, < 0
for fakes), the share of saturated outputs, |f_hat| > 0.99 s (s: PGN's scale,
1 for the method), and the loss's pull on the raw f of reals and of fakes:
the mean of -d loss_i / d f_i (the way gradient descent moves each sample's f,
through f_hat with the denominator's norm held: `Normalized.slope`). The two
pulls' sum is what a shift shared by every output, such as the last bias, is
pushed by. Last, cos(grad_x f, 1): how far
the raw gradient points along the ones vector of PGN's ||1 - grad_x f|| (0 for
the raw critics, which compute no input gradient).

`PGNGAN(diagnostics=...)` takes any function of critic_diagnostics' signature
returning these keys (e.g. `zeros`, to price them: tools/bench_step_time.py).
"""

import tensorflow as tf

from pgn_tf.normalization import Normalized

DIAGNOSTICS = (
    "f_real_mean",
    "f_real_std",
    "f_fake_mean",
    "f_fake_std",
    "input_grad_norm_mean",
    "accuracy",
    "saturated",
    "pull_real_mean",
    "pull_fake_mean",
    "ones_cos_mean",
)


def critic_diagnostics(out, m, loss_fn):
    """The DIAGNOSTICS of one critic call on m reals then m fakes (a few elementwise ops on what the step has)."""
    out = Normalized(*(tf.stop_gradient(t) for t in out))
    f_real, f_fake, f_hat, dtype = out.f[:m], out.f[m:], out.f_hat, out.f_hat.dtype
    right = tf.concat([f_hat[:m] > 0, f_hat[m:] < 0], axis=0)
    with tf.GradientTape() as tape:
        tape.watch(f_hat)
        loss, _, _ = loss_fn.critic(f_hat[:m], f_hat[m:])
    # Each side's loss is a mean over its m samples: m * d loss / d f_hat_i is sample i's own.
    pull = -tape.gradient(loss, f_hat) * tf.cast(m, dtype) * out.slope
    return {
        "f_real_mean": tf.reduce_mean(f_real),
        "f_real_std": tf.math.reduce_std(f_real),
        "f_fake_mean": tf.reduce_mean(f_fake),
        "f_fake_std": tf.math.reduce_std(f_fake),
        "input_grad_norm_mean": tf.reduce_mean(out.input_grad_norm),
        "accuracy": tf.reduce_mean(tf.cast(right, dtype)),
        "saturated": tf.reduce_mean(tf.cast(tf.abs(f_hat) > 0.99 * out.scale, dtype)),
        "pull_real_mean": tf.reduce_mean(pull[:m]),
        "pull_fake_mean": tf.reduce_mean(pull[m:]),
        "ones_cos_mean": tf.reduce_mean(out.ones_cos),
    }


def zeros(out, m, loss_fn):
    """The DIAGNOSTICS as zeros: a step without their cost (what bench_step_time compares against)."""
    return dict.fromkeys(DIAGNOSTICS, tf.zeros((), out.f_hat.dtype))
