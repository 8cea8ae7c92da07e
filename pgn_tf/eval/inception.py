"""The GAN-evaluation Inception (TF-Hub tfgan/eval/inception/1) from a local folder or a TF-Hub handle.

The model takes [N, 299, 299, 3] in [-1, 1] and returns "logits" [N, 1008]
and "pool_3" [N, 2048]. It is found, in order: at `path` (a SavedModel or
TF-Hub module folder), in the TF-Hub cache ($TFHUB_CACHE_DIR, else
<tmp>/tfhub_modules, under sha1(handle) as tensorflow_hub stores it), then
downloaded through tensorflow_hub when the hub host resolves. Offline and
uncached, loading fails at once with one line saying where to put it.
"""

import hashlib
import os
import tempfile
import urllib.parse

import tensorflow as tf

from pgn_tf.data import host_reachable
from pgn_tf.errors import InceptionError
from pgn_tf.eval.features import FeatureNet

INCEPTION_TFHUB = "https://tfhub.dev/tensorflow/tfgan/eval/inception/1"
IMAGE_SIZE = 299


def cache_dir(handle=INCEPTION_TFHUB):
    """Where tensorflow_hub keeps (or would keep) `handle`."""
    root = os.environ.get("TFHUB_CACHE_DIR") or os.path.join(tempfile.gettempdir(), "tfhub_modules")
    return os.path.join(root, hashlib.sha1(handle.encode("utf8")).hexdigest())


def _is_saved_model(path):
    return os.path.isfile(os.path.join(path, "saved_model.pb"))


def _resolve(path, handle):
    hint = (
        f"download {handle} (a .tar.gz; add ?tf-hub-format=compressed) on a machine with network access, "
        f"unpack it and pass --inception_path=DIR (gin: inception.load_inception.path), or unpack it into "
        f"{cache_dir(handle)} ($TFHUB_CACHE_DIR/<sha1 of the handle>)"
    )
    if path:
        if not _is_saved_model(path):
            raise InceptionError(f"no SavedModel (saved_model.pb) in inception path {path}; {hint}.")
        return path
    cached = cache_dir(handle)
    if _is_saved_model(cached):
        return cached
    host = urllib.parse.urlparse(handle).hostname
    if host is None or not host_reachable(host):
        where = os.environ.get("TFHUB_CACHE_DIR", "unset")
        raise InceptionError(f"Inception {handle} is not cached (TFHUB_CACHE_DIR={where}) and offline; {hint}.")
    import tensorflow_hub as hub

    try:
        return hub.resolve(handle)
    except Exception as e:  # noqa: BLE001  (any download failure is reported the same way)
        raise InceptionError(f"cannot download Inception {handle} ({type(e).__name__}); {hint}.") from None


def _outputs_fn(model, where):
    """The model's images -> {"logits", "pool_3"} function: __call__ (TF2 hub) or a signature."""
    candidates = [model] if callable(model) else []
    signatures = getattr(model, "signatures", {})
    for key in ("default", "serving_default"):
        if key in signatures:
            inputs = list(signatures[key].structured_input_signature[1])  # signatures take keyword arguments
            if len(inputs) == 1:
                candidates.append(lambda x, sig=signatures[key], name=inputs[0]: sig(**{name: x}))
    probe = tf.zeros((1, IMAGE_SIZE, IMAGE_SIZE, 3))
    for fn in candidates:
        try:
            out = fn(probe)
        except (TypeError, ValueError, tf.errors.InvalidArgumentError):
            continue
        if isinstance(out, dict) and "logits" in out and "pool_3" in out:
            return fn
    raise InceptionError(f"the model in {where} does not map images [N, 299, 299, 3] to 'logits' and 'pool_3'.")


def load_inception(path=None, handle=INCEPTION_TFHUB, batch_size=100):
    """Loads the GAN-evaluation Inception as a FeatureNet (resizes inputs to 299 bilinearly).

    Args:
      path: a local SavedModel / TF-Hub module folder; None to use the handle.
      handle: the TF-Hub handle, looked up in the TF-Hub cache first.
      batch_size: images per forward pass.

    Raises:
      InceptionError: not found (offline), or not the expected model.
    """
    where = _resolve(path, handle)
    try:
        model = tf.saved_model.load(where)
    except (OSError, ValueError, tf.errors.OpError) as e:
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise InceptionError(f"cannot load the Inception SavedModel in {where} ({first}).") from None
    fn = _outputs_fn(model, where)
    net = FeatureNet("inception", fn, IMAGE_SIZE, batch_size)
    net.model = model  # keeps the loaded variables alive
    return net
