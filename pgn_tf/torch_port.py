"""Official PyTorch state_dicts <-> Keras weights of the models in `pgn_tf.models`.

Every layer that holds weights is named by its PyTorch module path, so the
mapping is by name; layouts are converted on the way:

    Conv2d          weight (out, in, kh, kw)   <-> kernel (kh, kw, in, out)
    ConvTranspose2d weight (in, out, kh, kw)   <-> kernel (kh, kw, out, in)
    Linear          weight (out, in)           <-> kernel (in, out)
    BatchNorm2d     weight, bias, running_mean, running_var <-> gamma, beta, moving_*
    Embedding       weight (n, d)              <-> embeddings (n, d)
    spectral_norm   weight_orig, weight_u, weight_v <-> kernel, sn_u, sn_v

The models flatten / reshape at their Linear layers in PyTorch's NCHW order,
so those weights need no permutation.
"""

from collections.abc import Callable
from typing import NamedTuple

import keras
import numpy as np

from pgn_tf.layer_walk import walk_layers
from pgn_tf.models.layers import SNEmbedding, SpectralNorm

# Entries in official state_dicts that have no Keras counterpart.
IGNORED_SUFFIXES = ("num_batches_tracked",)


class Entry(NamedTuple):
    """One state_dict entry: its PyTorch name, the Keras variable and layout converters."""

    name: str
    variable: keras.Variable
    to_torch: Callable
    from_torch: Callable


def _same(a):
    return a


def _conv_to_torch(k):
    return np.transpose(k, (3, 2, 0, 1))


def _conv_from_torch(w):
    return np.transpose(w, (2, 3, 1, 0))


def _layer_entries(layer):
    p = layer.name
    if isinstance(layer, SpectralNorm):
        if isinstance(layer, SNEmbedding):
            to_t, from_t = _same, _same
        elif len(layer.kernel.shape) == 4:
            to_t, from_t = _conv_to_torch, _conv_from_torch
        else:
            to_t, from_t = np.transpose, np.transpose
        out = [Entry(f"{p}.weight_orig", layer.kernel, to_t, from_t)]
        if layer.bias is not None:
            out.append(Entry(f"{p}.bias", layer.bias, _same, _same))
        return out + [
            Entry(f"{p}.weight_u", layer.sn_u, _same, _same),
            Entry(f"{p}.weight_v", layer.sn_v, _same, _same),
        ]
    if isinstance(layer, (keras.layers.Conv2D, keras.layers.Conv2DTranspose)):
        # Both kernels go to PyTorch's layout with the same transpose.
        out = [Entry(f"{p}.weight", layer.kernel, _conv_to_torch, _conv_from_torch)]
        if layer.use_bias:
            out.append(Entry(f"{p}.bias", layer.bias, _same, _same))
        return out
    if isinstance(layer, keras.layers.Dense):
        out = [Entry(f"{p}.weight", layer.kernel, np.transpose, np.transpose)]
        if layer.use_bias:
            out.append(Entry(f"{p}.bias", layer.bias, _same, _same))
        return out
    if isinstance(layer, keras.layers.BatchNormalization):
        out = []
        if layer.scale:
            out.append(Entry(f"{p}.weight", layer.gamma, _same, _same))
        if layer.center:
            out.append(Entry(f"{p}.bias", layer.beta, _same, _same))
        out.append(Entry(f"{p}.running_mean", layer.moving_mean, _same, _same))
        out.append(Entry(f"{p}.running_var", layer.moving_variance, _same, _same))
        return out
    if isinstance(layer, keras.layers.Embedding):
        return [Entry(f"{p}.weight", layer.embeddings, _same, _same)]
    return []


def entries(model):
    """All state_dict entries of a built model, in layer order.

    Raises:
      ValueError: when the model holds variables that no entry covers (a
        layer type this module does not know).
    """
    out = []
    for layer in walk_layers(model, include_self=False):
        out.extend(_layer_entries(layer))
    covered = {id(e.variable) for e in out}
    missing = [v.path for v in model.weights if id(v) not in covered]
    if missing:
        raise ValueError(f"No PyTorch counterpart known for variables {missing[:5]} of {model.name!r}.")
    return out


def state_dict(model):
    """{pytorch_name: numpy array in PyTorch layout} of a Keras model."""
    return {e.name: e.to_torch(np.asarray(e.variable.numpy())) for e in entries(model)}


def load_state_dict(model, state_dict, strict=True):
    """Loads a PyTorch state_dict ({name: array in PyTorch layout}) into a built model.

    Args:
      model: a model from `pgn_tf.models` (or any model named the same way).
      state_dict: {pytorch_name: numpy array (or torch tensor via .numpy())}.
      strict: when True, every model entry must be given and every given
        entry used (num_batches_tracked excepted).

    Raises:
      ValueError: on missing or unexpected names (strict) or a shape mismatch;
        nothing is assigned then.
    """
    sd = {k: np.asarray(v) for k, v in state_dict.items() if not k.endswith(IGNORED_SUFFIXES)}
    model_entries = entries(model)
    names = {e.name for e in model_entries}
    problems = []
    if strict:
        missing = sorted(names - set(sd))
        unexpected = sorted(set(sd) - names)
        if missing:
            problems.append(f"missing {missing[:8]}{' ...' if len(missing) > 8 else ''}")
        if unexpected:
            problems.append(f"unexpected {unexpected[:8]}{' ...' if len(unexpected) > 8 else ''}")
    values = []
    for e in model_entries:
        if e.name not in sd:
            continue
        value = e.from_torch(sd[e.name])
        if tuple(value.shape) != tuple(e.variable.shape):
            problems.append(
                f"{e.name}: PyTorch shape {sd[e.name].shape} does not fit Keras shape {tuple(e.variable.shape)}"
            )
            continue
        values.append((e.variable, value))
    if problems:
        raise ValueError(f"Cannot load state_dict into {model.name!r}: " + "; ".join(problems))
    for var, value in values:
        var.assign(value.astype(var.dtype))
    return model
