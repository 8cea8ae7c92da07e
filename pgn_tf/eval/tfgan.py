"""TF-GAN's evaluator math, imported without `import tensorflow_gan`.

`import tensorflow_gan` fails on TensorFlow >= 2.16 (its package imports
touch tf.estimator; tensorflow/gan issue 55). Its `classifier_metrics`
module is plain TF2 and imports fine once the parent packages exist, so they
are registered as empty namespace packages pointing at the installed files.
"""

import importlib
import importlib.util
import os
import sys
import types


def _load():
    spec = importlib.util.find_spec("tensorflow_gan")
    if spec is None or spec.origin is None:
        raise ImportError("tensorflow-gan is not installed; pip install -r requirements.txt")
    root = os.path.dirname(spec.origin)
    for name, path in (
        ("tensorflow_gan", root),
        ("tensorflow_gan.python", os.path.join(root, "python")),
        ("tensorflow_gan.python.eval", os.path.join(root, "python", "eval")),
    ):
        module = sys.modules.get(name)
        if module is None:
            module = types.ModuleType(name)
            module.__path__ = [path]
            sys.modules[name] = module
    return importlib.import_module("tensorflow_gan.python.eval.classifier_metrics")


classifier_metrics = _load()
