"""walk_layers: every layer inside a Keras model or layer, the public way (no private Keras walk)."""

import keras


def walk_layers(layer, include_self=True):
    """Every layer inside `layer` (a model or a layer), nested models' and custom layers' sublayers too, each once.

    Depth first, each layer before its sublayers: a model's `.layers`, and the
    layers another layer holds in its (public) attributes, in the order they
    were set, as PyTorch's `named_modules()` lists a module's children.
    Returns a list of layers, `layer` first when include_self.
    """
    found, seen = [], set()

    def visit(node):
        if id(node) in seen:
            return
        seen.add(id(node))
        found.append(node)
        for sub in _sublayers(node):
            visit(sub)

    visit(layer)
    return found if include_self else found[1:]


def _sublayers(layer):
    if isinstance(layer, keras.Model):
        return layer.layers
    out = []
    for name, value in vars(layer).items():
        if name.startswith("_"):
            continue
        values = value.values() if isinstance(value, dict) else value if isinstance(value, (list, tuple)) else [value]
        out.extend(v for v in values if isinstance(v, keras.layers.Layer))
    return out
