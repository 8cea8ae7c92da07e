"""Makes a parity fixture with the official PyTorch code (needs torch and a checkout of it).

Usage:
  python tools/make_parity_fixture.py --official_dir=PATH --arch=biggan.32 --loss=hinge \
      --seed=21 --out=tests/data/parity/biggan32_seed21.npz [--float64] [--n=4]

Writes the format of tests/data/parity/shipped (read by its fixture.py, which must lie
beside --out, or be named by --fixture_py): weights regenerated from seeds in
PyTorch layout, inputs x_real (uniform in [-1, 1]), z and, for conditional
models, labels y; the official critic outputs (raw, PGN, GN), the input
gradient of sum(PGN(D)(x)), G(z) with batch statistics, and the loss and
gradient summaries of one PGN critic step on concat([x_real, G(z)]) and one
generator step. One training-mode forward of G serves G(z) and both steps (so
spectral norm advances once); conditional fakes take the labels y.
--float64 runs the official code in float64, so that the fixture holds the
exact values and `check_parity.py --float64` can hold a port to ~1e-5 of the
tolerances.
"""

import argparse
import importlib.util
import os

import common
import numpy as np


def make(args):
    import torch

    spec = importlib.util.spec_from_file_location("parity_fixture", args.fixture_py)
    fixture = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fixture)
    official = common.Official(args.official_dir)
    pgn = official.pgn
    dtype = np.float64 if args.float64 else np.float32
    torch.set_default_dtype(torch.float64 if args.float64 else torch.float32)
    conditional = args.arch.startswith("biggan")
    size = int(args.arch.split(".")[1])
    z_dim = 128

    G, D = official.models(args.arch, z_dim, 10)
    G.train()
    D.train()
    state = {}
    for tag, net, seed in (("G", G, args.seed), ("D", D, args.seed + 1)):
        entries = [(k, tuple(v.shape)) for k, v in net.state_dict().items()]
        sd = fixture.regenerate_state_dict(seed, entries)
        net.load_state_dict(
            {k: torch.from_numpy(v.astype(dtype) if v.dtype == np.float32 else v) for k, v in sd.items()}
        )
        state[f"{tag}/state_names"] = np.array([k for k, _ in entries])
        state[f"{tag}/state_shapes"] = np.array([",".join(map(str, s)) for _, s in entries])
        state[f"{tag}/state_seed"] = np.array(seed)

    rng = np.random.default_rng(args.seed)
    x_np = rng.uniform(-1, 1, (args.n, 3, size, size)).astype(np.float32)
    z_np = rng.standard_normal((args.n, z_dim)).astype(np.float32)
    y_np = rng.integers(0, 10, args.n).astype(np.int64)
    x, z, y = torch.from_numpy(x_np.astype(dtype)), torch.from_numpy(z_np.astype(dtype)), torch.from_numpy(y_np)
    kw = {"y": y} if conditional else {}
    loss_fn = official.loss(args.loss)
    out = {}
    with torch.no_grad():
        out["f_raw"] = D(x, **kw)
    xr = x.clone().requires_grad_(True)
    f_hat = pgn(D, xr, **kw)
    out["f_hat_pgn"] = f_hat.detach()
    out["grad_x_sum_f_hat_pgn_nchw"] = torch.autograd.grad(f_hat.sum(), xr)[0]
    out["f_hat_gn"] = official.gn(D, x.clone(), **kw).detach()
    fake = G(z, y) if conditional else G(z)
    out["g_of_z_nchw"] = fake.detach()
    both_kw = {"y": torch.cat([y, y])} if conditional else {}
    pred = pgn(D, torch.cat([x, fake.detach()]), **both_kw)
    d_loss, _, _ = loss_fn(pred[: args.n], pred[args.n :])
    d_loss.backward()
    out["d_loss"] = d_loss.detach()
    d_grads = [(k, p.grad.numpy().copy()) for k, p in D.named_parameters()]
    for p in D.parameters():
        p.requires_grad_(False)
    g_loss = loss_fn(pgn(D, fake, **kw))
    g_loss.backward()
    out["g_loss"] = g_loss.detach()
    g_grads = [(k, p.grad.numpy().copy()) for k, p in G.named_parameters()]

    out = {k: v.numpy().astype(dtype) for k, v in out.items()}
    for prefix, named, seed in (("d_grads", d_grads, args.seed + 3), ("g_grads", g_grads, args.seed + 4)):
        out.update(fixture.grad_summary(prefix, named, seed))
        out.update({f"{prefix}/{k}/full": g.astype(dtype) for k, g in named if g.size <= 4096})
        out[f"{prefix}/names"] = np.array([k for k, _ in named])
    if conditional:
        out["y"] = y_np
    np.savez_compressed(
        args.out,
        arch=np.array(args.arch),
        loss=np.array(args.loss),
        seed=np.array(args.seed),
        n=np.array(args.n),
        size=np.array(size),
        dtype=np.array(np.dtype(dtype).name),
        torch_version=np.array(torch.__version__),
        x_real_nchw=x_np,
        z=z_np,
        **state,
        **out,
    )
    print(
        f"wrote {args.out}: {args.arch}/{args.loss} seed {args.seed} {np.dtype(dtype).name} torch {torch.__version__}"
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--official_dir", required=True, help="checkout of the official PGN PyTorch code")
    parser.add_argument("--arch", required=True)
    parser.add_argument("--loss", default="hinge", choices=["hinge", "bce", "wass"])
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--n", type=int, default=4)
    parser.add_argument("--float64", action="store_true")
    parser.add_argument("--fixture_py", default=None, help="fixture.py of the format (default: beside --out)")
    args = parser.parse_args()
    args.fixture_py = args.fixture_py or os.path.join(os.path.dirname(os.path.abspath(args.out)), "fixture.py")
    if not os.path.isfile(args.fixture_py):
        parser.error(f"no fixture.py at {args.fixture_py}; pass --fixture_py")
    make(args)


if __name__ == "__main__":
    main()
