"""What the tools share: the process's memory, one architecture's run settings, and the official PyTorch code.

The tools import it as a sibling (`import common`: a script's own folder is on sys.path when it runs as
`python tools/<name>.py`). Importing it loads neither TensorFlow nor torch (bench_step_time measures the
memory of the imports it makes), so pgn_tf and the official code are imported where they are used.
"""

import functools
import os
import resource
import sys


def rss_mib(field="VmHWM"):
    """The process's resident memory in MiB: VmHWM, its peak, or VmRSS, what it holds now.

    VmHWM starts anew at exec (ru_maxrss, the fallback off Linux, would carry the parent's peak into a subprocess).
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:  # no /proc: not Linux
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def adam(beta_1=0.0, beta_2=0.9):
    """pgn_tf's Adam (torch's arithmetic) with torch's epsilon and the betas every paper row binds, (0, 0.9)."""
    from pgn_tf import optimizers

    return functools.partial(optimizers.Adam, beta_1=beta_1, beta_2=beta_2, epsilon=1e-8)


def arch_config(arch, loss="hinge", **settings):
    """A RunConfig of one of the paper's architectures ("dcgan.32", ...) as the timing tools run it.

    The digits as data, `arch`'s generator and critic at full width (10 classes for a conditional arch),
    the loss by name, `adam()` for both players and a constant learning rate (decay from step 200,000,
    the default total_steps); `settings` (any of `RunConfig.make`'s) override these.
    """
    from pgn_tf import data, losses, models
    from pgn_tf.config import RunConfig

    optimizer = adam()
    defaults = {
        "dataset_fn": data.digits,
        "generator_fn": functools.partial(models.build_generator, arch),
        "critic_fn": functools.partial(models.build_critic, arch),
        "loss_fn": functools.partial(losses.get, loss),
        "d_optimizer": optimizer,
        "g_optimizer": optimizer,
        "num_classes": 10 if models.is_conditional(arch) else None,
        "lr_decay_start": 200_000,
    }
    return RunConfig.make(**{**defaults, **settings})


# The official code's classes for our architecture names: (module, generator, critic).
OFFICIAL_ARCHS = {
    "dcgan.32": ("dcgan", "Generator32", "Discriminator32"),
    "dcgan.48": ("dcgan", "Generator48", "Discriminator48"),
    "resnet.32": ("resnet", "ResGenerator32", "ResDiscriminator32"),
    "resnet.48": ("resnet", "ResGenerator48", "ResDiscriminator48"),
    "resnet.128": ("resnet", "ResGenerator128", "ResDiscriminator128"),
    "resnet.256": ("resnet", "ResGenerator256", "ResDiscriminator256"),
    "biggan.32": ("biggan", "Generator32", "Discriminator32"),
}
OFFICIAL_LOSSES = {"hinge": "HingeLoss", "bce": "BCEWithLogits", "wass": "Wasserstein"}


class Official:
    """The official PGN PyTorch code, from a checkout of it (needs torch): its models, losses, PGN and GN.

    Attributes:
      pgn: the official `penalty_normalize_gradient(net_D, x, **kwargs)`, PGN's f_hat.
    """

    def __init__(self, official_dir):
        # The official code is a folder of top-level modules (losses.py, models/), not an installed package:
        # importing it means putting its folder on sys.path, which is done here only.
        sys.path.insert(0, os.path.abspath(official_dir))
        import losses
        from models import biggan, dcgan, resnet
        from models.gradnorm import penalty_normalize_gradient

        self._losses = losses
        self._modules = {"dcgan": dcgan, "resnet": resnet, "biggan": biggan}
        self.pgn = penalty_normalize_gradient

    def models(self, arch, z_dim=128, num_classes=10):
        """(G, D) of `arch` as the official train.py builds them: G(z_dim, num_classes), D(num_classes)."""
        module, generator, critic = OFFICIAL_ARCHS[arch]
        module = self._modules[module]
        return _construct(getattr(module, generator), z_dim, num_classes), _construct(
            getattr(module, critic), num_classes
        )

    def loss(self, name):
        """The official loss object of `name` ("hinge", "bce", "wass"): loss(pred_real, pred_fake) -> (loss, ...)
        for the critic, loss(pred_fake) for G."""
        return getattr(self._losses, OFFICIAL_LOSSES[name])()

    @staticmethod
    def gn(net_d, x, **kwargs):
        """GN as the GN-GAN code defines it (the official PGN code with f in place of 1 - f): f / (||grad_x f|| + |f|)."""
        import torch

        x.requires_grad_(True)
        f = net_d(x, **kwargs)
        grad = torch.autograd.grad(f, [x], torch.ones_like(f), create_graph=True)[0]
        norm = torch.norm(torch.flatten(grad, start_dim=1), p=2, dim=1).view(-1, 1)
        return f / (norm + torch.abs(f))


def _construct(cls, *args):
    try:
        return cls(*args)
    except TypeError:  # resnet.128 / resnet.256 take z_dim only (G) and nothing (D)
        return cls(*args[:-1])
