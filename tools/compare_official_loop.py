"""Runs the official training loop (PyTorch) and PGNGAN side by side from the same weights, data and latents.

Usage:
  python tools/compare_official_loop.py --official_dir=PATH [--arch=dcgan.32] [--loss=bce] [--steps=20]
      [--batch_size_D=8] [--batch_size_G=8] [--n_dis=1] [--lr_D=2e-4] [--lr_G=2e-4] [--beta1=0 --beta2=0.9]
      [--float64] [--every=5]

Both start from the official initialisation (copied into Keras with
torch_port), see the same real batches (embedded digits, 32x32) and the same
latents, and run `steps` outer steps of the loop: n_dis critic steps with
PGN on concat(real, fake), one generator step, EMA. Every `every` steps it
prints one JSON line with both losses and the largest relative difference of
G, D and EMA-G weights, so many-step dynamics (Adam, EMA, slicing, BN
statistics) are checked, not only one step. Needs torch (not a dependency).
"""

import argparse
import copy
import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")  # as pgn_tf's commands set it

import common
import numpy as np


def _rel(a, b):
    # Parameters that stay ~0 (conv biases before BatchNorm: zero gradient up to rounding) count against 1e-6.
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-6))


def _max_rel(ours, theirs):
    """(largest relative difference, its entry) over the state dict."""
    diffs = [(_rel(ours[k], np.asarray(v)), k) for k, v in theirs.items() if not k.endswith("num_batches_tracked")]
    worst = max(diffs)
    return [worst[0], worst[1]]


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--official_dir", required=True)
    p.add_argument("--arch", default="dcgan.32")
    p.add_argument("--loss", default="bce", choices=["bce", "hinge", "wass"])
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--every", type=int, default=5)
    p.add_argument("--batch_size_D", type=int, default=8)
    p.add_argument("--batch_size_G", type=int, default=8)
    p.add_argument("--n_dis", type=int, default=1)
    p.add_argument("--lr_D", type=float, default=2e-4)
    p.add_argument("--lr_G", type=float, default=2e-4)
    p.add_argument("--beta1", type=float, default=0.0)
    p.add_argument("--beta2", type=float, default=0.9)
    p.add_argument("--ema_decay", type=float, default=0.9999)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--float64", action="store_true")
    p.add_argument("--control", type=float, default=0.0, help="compare the official code with itself, perturbed")
    args = p.parse_args()

    import tensorflow as tf
    import torch

    from pgn_tf import data, losses, models, precision, torch_port, train_lib
    from pgn_tf.config import RunConfig

    dtype = "float64" if args.float64 else "float32"
    torch.set_default_dtype(getattr(torch, dtype))
    precision.scope(dtype).__enter__()  # for the whole (one-shot) script
    official_code = common.Official(args.official_dir)
    pgn = official_code.pgn
    if args.arch.startswith("biggan"):
        raise SystemExit("conditional models are not supported here")
    torch.manual_seed(args.seed)
    G, D = official_code.models(args.arch)
    ema_G = copy.deepcopy(G)
    G.train(), D.train(), ema_G.train()

    size = int(args.arch.split(".")[1])
    images = data.digits_arrays(size)[0].astype(np.float64) / 127.5 - 1.0
    rng = np.random.default_rng(args.seed)
    b, bg, n = args.batch_size_D, args.batch_size_G, args.n_dis
    reals = [images[rng.choice(len(images), n * b, replace=False)] for _ in range(args.steps)]
    z_d = [[rng.standard_normal((b, 128)) for _ in range(n)] for _ in range(args.steps)]
    z_g = [rng.standard_normal((bg, 128)) for _ in range(args.steps)]

    # Ours, from the same initial weights.
    g, d = models.build_generator(args.arch, 128), models.build_critic(args.arch)
    torch_port.load_state_dict(g, {k: v.numpy() for k, v in G.state_dict().items()})
    torch_port.load_state_dict(d, {k: v.numpy() for k, v in D.state_dict().items()})
    queue = []  # the official run's latents, in the order our steps draw them
    adam = common.adam(args.beta1, args.beta2)
    config = RunConfig.make(
        dataset_fn=data.digits, generator_fn=lambda z_dim: g, critic_fn=lambda: d,
        loss_fn=lambda: losses.get(args.loss), d_optimizer=adam, g_optimizer=adam, lr_D=args.lr_D, lr_G=args.lr_G,
        total_steps=args.steps, lr_decay_start=args.steps, n_dis=n, batch_size_D=b, batch_size_G=bg,
        ema_decay=args.ema_decay, precision=dtype,
    )  # fmt: skip
    gan = train_lib.build_gan(config, latents=lambda n, salt: (tf.constant(queue.pop(0), dtype), None))
    gan.run_eagerly = True  # the latents come from a Python queue

    class OfficialLoop:
        """The official train.py loop, one outer step at a time."""

        def __init__(self, G, D, ema_G):
            self.G, self.D, self.ema_G = G, D, ema_G
            self.optim_G = torch.optim.Adam(G.parameters(), lr=args.lr_G, betas=(args.beta1, args.beta2))
            self.optim_D = torch.optim.Adam(D.parameters(), lr=args.lr_D, betas=(args.beta1, args.beta2))
            self.loss_fn = official_code.loss(args.loss)

        def step(self, real, zs_d, z_g):
            G, D = self.G, self.D
            for k in range(n):
                self.optim_D.zero_grad()
                x_real = torch.from_numpy(np.ascontiguousarray(real[k * b : (k + 1) * b].transpose(0, 3, 1, 2)))
                with torch.no_grad():
                    x_fake = G(torch.from_numpy(zs_d[k])).detach()
                pred = pgn(D, torch.cat([x_real, x_fake], dim=0))
                d_loss, _, _ = self.loss_fn(pred[:b], pred[b:])
                d_loss.backward()
                self.optim_D.step()
            for q in D.parameters():
                q.requires_grad_(False)
            self.optim_G.zero_grad()
            g_loss = self.loss_fn(pgn(D, G(torch.from_numpy(z_g))))
            g_loss.backward()
            self.optim_G.step()
            for q in D.parameters():
                q.requires_grad_(True)
            with torch.no_grad():
                sd, ed = G.state_dict(), self.ema_G.state_dict()
                for key in sd:
                    ed[key].copy_(ed[key] * args.ema_decay + sd[key] * (1 - args.ema_decay))
            return float(d_loss.detach()), float(g_loss.detach())

        def states(self):
            return [{k: v.numpy() for k, v in net.state_dict().items()} for net in (self.G, self.D, self.ema_G)]

    official = OfficialLoop(G, D, ema_G)
    if args.control:
        # A second official run whose weights start perturbed by `control` (relative): how fast rounding-size
        # differences grow in this GAN on their own.
        G2, D2, E2 = copy.deepcopy(G), copy.deepcopy(D), copy.deepcopy(ema_G)
        with torch.no_grad():
            for q in [*D2.parameters(), *G2.parameters()]:
                q.mul_(1 + args.control * torch.randn_like(q))
        other = OfficialLoop(G2, D2, E2)
    for step in range(args.steps):
        t_losses = official.step(reals[step], z_d[step], z_g[step])
        if args.control:
            o_losses = other.step(reals[step], z_d[step], z_g[step])
            o_states = other.states()
        else:
            queue.extend([*z_d[step], z_g[step]])
            logs = gan.train_on_batch(tf.constant(reals[step], dtype), return_dict=True)
            gan.reset_metrics()
            o_losses = float(logs["d_loss"]), float(logs["g_loss"])
            o_states = [torch_port.state_dict(m) for m in (g, d, gan.ema_generator)]
        if (step + 1) % args.every == 0 or step + 1 == args.steps:
            t_states = official.states()
            result = {
                "step": step + 1,
                "compared": "official vs perturbed official" if args.control else "pgn_tf vs official",
                "d_loss": [o_losses[0], t_losses[0]],
                "g_loss": [o_losses[1], t_losses[1]],
                **{f"max_rel_diff_{k}": _max_rel(o, t) for k, o, t in zip(("G", "D", "EMA_G"), o_states, t_states)},
                "dtype": dtype,
            }
            print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
