"""Every gin configurable of pgn_tf, registered in one place; imported on purpose by what parses gin.

Components are gin references: @dcgan.generator, @data.cifar10, @losses.hinge,
@d/optimizers.Adam (torch's Adam arithmetic, as the official code); Keras' own
stays available as @keras.optimizers.Adam. The gin root, train_and_evaluate,
is `train_lib.settings`.
"""

import gin
import keras

from pgn_tf import data, losses, optimizers
from pgn_tf.eval import digits_classifier, inception
from pgn_tf.models import biggan, dcgan, resnet

# external_configurable returns a configurable copy and leaves the original alone: the gin root's defaults
# must be these copies, or bindings such as d/optimizers.Adam.beta_1 would never apply.
Adam = gin.external_configurable(optimizers.Adam, module="optimizers")
gin.external_configurable(keras.optimizers.Adam, module="keras.optimizers")
for _module, _fns in (("dcgan", dcgan), ("resnet", resnet), ("biggan", biggan)):
    for _fn in (_fns.generator, _fns.critic):
        gin.external_configurable(_fn, module=_module)
for _fn in data.SOURCES:
    # Set by the run, never by a config.
    gin.external_configurable(_fn, module="data", denylist=["batch_size", "seed", "start_step"])
load_inception = gin.external_configurable(inception.load_inception, module="inception", denylist=["batch_size"])
gin.external_configurable(digits_classifier.load_digits_classifier, module="digits_classifier", denylist=["batch_size"])
for _loss in (losses.hinge, losses.bce, losses.wasserstein):
    gin.external_configurable(lambda _loss=_loss: _loss, name=_loss.name, module="losses")
