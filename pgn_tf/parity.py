"""Checks the port against numbers computed by the official PyTorch code (parity fixtures).

A fixture (see tests/data/parity/shipped/README.md) holds, for one architecture, weights
regenerated from a seed in PyTorch layout, inputs, and the official outputs:
critic outputs with and without PGN/GN, the input gradient, G(z) with batch
statistics, and the losses and gradient summaries of one critic and one
generator step. `check_fixture` recomputes all of it here and compares.
"""

import importlib.util
import os
from typing import NamedTuple

import numpy as np
import tensorflow as tf

from pgn_tf import losses, models, precision, torch_port
from pgn_tf.normalization import normalize

# Tolerances (see tools/check_parity.py --help).
REL_OUTPUT, ABS_OUTPUT_FLOOR = 1e-4, 1e-6
ABS_IMAGE = 1e-4
REL_GRAD_X = 1e-3
REL_GRAD_SUMMARY, MODEL_L2_WEIGHT = 1e-2, 1e-4


class Check(NamedTuple):
    """The worst error/tolerance ratio of one group of quantities (pass when <= 1)."""

    group: str
    ratio: float
    where: str


def load_fixture(path):
    """Loads a fixture with the `fixture.py` that lies beside it.

    Returns:
      (fixture dict, the fixture module).

    Raises:
      FileNotFoundError: when the fixture or its fixture.py is missing.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No parity fixture at {path}.")
    reader = os.path.join(os.path.dirname(os.path.abspath(path)), "fixture.py")
    if not os.path.isfile(reader):
        raise FileNotFoundError(f"No fixture.py beside {path} to read it with.")
    spec = importlib.util.spec_from_file_location("pgn_parity_fixture", reader)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.load(path), module


def _nchw(x):
    return np.transpose(np.asarray(x), (0, 3, 1, 2))


def _nhwc(x):
    return np.transpose(np.asarray(x), (0, 2, 3, 1))


def _labels(fx):
    for key in ("y", "labels"):
        if key in fx:
            return tf.constant(fx[key], tf.int32)
    return None


def compute(fx, dtype="float32"):
    """Recomputes every quantity of a fixture with the Keras port.

    Args:
      fx: a loaded fixture.
      dtype: "float32" (as users train) or "float64", which removes float
        noise: a correct port then matches the fixture to PyTorch's own
        float32 noise, far inside the tolerances.

    Returns:
      {key: numpy array} with the fixture's keys (NCHW where the fixture is),
      plus "d_grads" / "g_grads": [(pytorch_name, gradient in PyTorch layout)].
    """
    with precision.scope(dtype):
        return _compute(fx, dtype)


def _compute(fx, dtype):
    arch = str(fx["arch"])
    loss = losses.get(str(fx["loss"]))
    z = tf.constant(fx["z"], dtype)
    x = tf.constant(_nhwc(fx["x_real_nchw"]), dtype)
    labels = _labels(fx)
    kwargs = {}
    if models.is_conditional(arch):
        if labels is None:
            raise ValueError(f"Fixture for conditional {arch} has no labels ('y').")
        kwargs["num_classes"] = int(fx["D/state"]["embedding.weight"].shape[0])
    G = models.build_generator(arch, z_dim=int(z.shape[1]), **kwargs)
    D = models.build_critic(arch, **kwargs)
    torch_port.load_state_dict(G, fx["G/state"])
    torch_port.load_state_dict(D, fx["D/state"])
    g_entries = [e for e in torch_port.entries(G) if e.variable.trainable]
    d_entries = [e for e in torch_port.entries(D) if e.variable.trainable]
    g_in = z if labels is None else [z, labels]
    out = {}

    out["f_raw"] = D(x if labels is None else [x, labels], training=True)
    with tf.GradientTape() as tape:
        tape.watch(x)
        f_hat = normalize(D, x, labels, "pgn", training=True, frozen=True).f_hat  # as the generator step
    out["f_hat_pgn"] = f_hat
    out["grad_x_sum_f_hat_pgn_nchw"] = _nchw(tape.gradient(f_hat, x))
    out["f_hat_gn"] = normalize(D, x, labels, "gn", training=True).f_hat

    # One G call serves every quantity, so stateful layers (spectral norm)
    # advance once, as in one official forward.
    with tf.GradientTape() as g_tape:
        fake = G(g_in, training=True)
        g_pred = normalize(D, fake, labels, "pgn", training=True, frozen=True).f_hat
        g_loss = loss.generator(g_pred)
    out["g_of_z_nchw"] = _nchw(fake)
    out["g_loss"] = g_loss
    g_grads = g_tape.gradient(g_loss, [e.variable for e in g_entries])

    n = int(x.shape[0])
    both = tf.concat([x, tf.stop_gradient(fake)], axis=0)
    both_labels = None if labels is None else tf.concat([labels, labels], axis=0)
    with tf.GradientTape() as d_tape:
        pred = normalize(D, both, both_labels, "pgn", training=True).f_hat
        d_loss, _, _ = loss.critic(pred[:n], pred[n:])
    out["d_loss"] = d_loss
    d_grads = d_tape.gradient(d_loss, [e.variable for e in d_entries])

    out = {k: np.asarray(v) for k, v in out.items()}
    # Embedding gradients arrive as IndexedSlices: densify.
    out["d_grads"] = [(e.name, e.to_torch(tf.convert_to_tensor(g).numpy())) for e, g in zip(d_entries, d_grads)]
    out["g_grads"] = [(e.name, e.to_torch(tf.convert_to_tensor(g).numpy())) for e, g in zip(g_entries, g_grads)]
    return out


def _worst(group, errs, tols, names):
    ratios = np.asarray(errs, np.float64) / np.asarray(tols, np.float64)
    i = int(np.argmax(ratios))
    return Check(group, float(ratios[i]), names[i])


def _compare_outputs(fx, ours):
    errs, tols, names = [], [], []
    for key in ("f_raw", "f_hat_pgn", "f_hat_gn", "d_loss", "g_loss"):
        ref = np.asarray(fx[key], np.float64).ravel()
        got = np.asarray(ours[key], np.float64).ravel()
        errs.extend(np.abs(got - ref))
        tols.extend(np.maximum(REL_OUTPUT * np.abs(ref), ABS_OUTPUT_FLOOR))
        names.extend([key] * ref.size)
    return _worst("outputs", errs, tols, names)


def _compare_grad_summaries(group, fx, fixture_module, named_grads, seed):
    ref_l2 = {name: float(fx[f"{group}/{name}/l2"]) for name, _ in named_grads}
    model_l2 = float(np.sqrt(sum(v * v for v in ref_l2.values())))
    ours = fixture_module.grad_summary(group, named_grads, seed)
    errs, tols, names = [], [], []
    for name, g in named_grads:
        tol = REL_GRAD_SUMMARY * (ref_l2[name] + MODEL_L2_WEIGHT * model_l2)
        for part in ("sum", "l2", "proj"):
            key = f"{group}/{name}/{part}"
            errs.append(float(np.max(np.abs(np.asarray(ours[key]) - fx[key]))))
            tols.append(tol)
            names.append(f"{name}/{part}")
        full_key = f"{group}/{name}/full"
        if full_key in fx:
            errs.append(float(np.max(np.abs(g - fx[full_key]))))
            tols.append(tol)
            names.append(f"{name}/full")
    expected = {str(s) for s in fx[f"{group}/names"]}
    got = {name for name, _ in named_grads}
    if expected != got:
        raise ValueError(f"{group}: parameters differ from the fixture's: {sorted(expected ^ got)[:6]}")
    return _worst(group, errs, tols, names)


def check_fixture(path, dtype="float32"):
    """Recomputes one fixture (in `dtype`, see `compute`) and compares it.

    Returns:
      (arch, loss, [Check]) with one Check per group: outputs, images,
      grad_x, d_grads, g_grads. Pass when every ratio <= 1.
    """
    fx, fixture_module = load_fixture(path)
    ours = compute(fx, dtype)
    seed = int(fx["seed"])
    checks = [_compare_outputs(fx, ours)]
    img_err = np.abs(ours["g_of_z_nchw"].astype(np.float64) - fx["g_of_z_nchw"])
    checks.append(Check("images", float(img_err.max() / ABS_IMAGE), "g_of_z"))
    ref_gx = np.asarray(fx["grad_x_sum_f_hat_pgn_nchw"], np.float64)
    gx_err = np.abs(ours["grad_x_sum_f_hat_pgn_nchw"] - ref_gx).max()
    checks.append(Check("grad_x", float(gx_err / (REL_GRAD_X * np.abs(ref_gx).max())), "grad_x"))
    checks.append(_compare_grad_summaries("d_grads", fx, fixture_module, ours["d_grads"], seed + 3))
    checks.append(_compare_grad_summaries("g_grads", fx, fixture_module, ours["g_grads"], seed + 4))
    return str(fx["arch"]), str(fx["loss"]), checks
