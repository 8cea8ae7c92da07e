"""Times full training iterations (what fit runs per step) of pgn_tf, and of the official PyTorch code.

Usage:
  python tools/bench_step_time.py --arch dcgan.32 --normalization pgn [--n_dis 1 --batch_size_D 64
      --batch_size_G 128 --iters 10 --warmup 2 --jit] [--official_dir PATH]

Prints one JSON line per implementation: s_per_iter {median, min, max} over --iters
iterations after --warmup, the median seconds of the critic part (n_dis critic steps)
and of the generator part, peak_rss_mib, and rss_after_import_mib (the framework and
the models' code imported, nothing built). With --official_dir (a checkout of the
official PGN code; torch installed) the same iteration of the official code is timed
right after, in a fresh process, and a last line gives ours / official.

Fraction of peak: gflop_per_iter is counted on our traced iteration (TF's cost
registry, 2 FLOPs per multiply-add, over the ops the iteration really runs; see
pgn_tf.flops.graph_flops), matmul_gflops is this machine's rate for one large matrix product
in the compute dtype (tf.linalg.matmul for ours, torch.mm for the official code,
each in its own process), and fraction_of_peak = gflop_per_iter / s_per_iter /
matmul_gflops. The official line uses the same FLOP count, a lower bound for it:
the same convolutions on the same shapes, but its generator step also takes the
backward pass through the critic that ours skips (normalization.normalize, frozen).
floor_over_official is what ours / official would be if our iteration ran at the
full matmul rate.

Ours also times the Lipschitz monitor (what train_and_evaluate runs every log_every
steps: ||grad_x D_out|| on 16 real images, 16 fakes and 16 interpolates) and reports
monitor_s, monitor_over_iter (one monitor call / one iteration) and monitor_share
(its cost spread over --log_every iterations). --normalization sn and --penalty
time the baselines (ours only: the official code has neither); --precision a Keras mixed policy.

Ours also prices the critic's diagnostics (diagnostics.DIAGNOSTICS, computed every critic
step): the same iteration traced again with them replaced by zeros (diagnostics.zeros), its FLOPs
(diagnostics_flop_share) and its time, the two iterations alternated --iters times
(diagnostics_time_share = 1 - without / with, medians; noise on a shared machine is
larger than the effect, so read the FLOP share first). The running means that log
them are kept in both.

--augment POLICY (a DiffAugment policy, e.g. color,translation,cutout; --augment_p a
probability or ada) trains the timed iteration with that augmentation, and prices it
the same way: the same settings without augmentation built beside it, the two
iterations alternated --iters times (augment_over_none = with / without, medians).
"""

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")  # as pgn_tf's commands set it (docs/performance.md)

import common


def _time(fn, iters, warmup):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return times


MATMUL_N = 4096


def _matmul_gflops(matmul, repeats=5):
    """The best rate of matmul(), one MATMUL_N-square product (2 n^3 FLOPs), over repeats after a warm-up."""
    matmul()
    best = min(_time(matmul, repeats, 0))
    return 2 * MATMUL_N**3 / best / 1e9


def _summary(impl, args, total, critic, generator):
    return {
        "impl": impl,
        "arch": args.arch,
        "normalization": args.normalization,
        "precision": "float32" if impl.startswith("official") else args.precision,
        "n_dis": args.n_dis,
        "batch_size_D": args.batch_size_D,
        "batch_size_G": args.batch_size_G,
        "s_per_iter": {"median": statistics.median(total), "min": min(total), "max": max(total)},
        "critic_s": statistics.median(critic),
        "generator_s": statistics.median(generator),
        "peak_rss_mib": common.rss_mib(),
        "threads": os.cpu_count(),
        "inter_op": args.inter_op,
        "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS"),
        "intra_op": args.intra_op,
    }


def _rates(gflop, s_per_iter, matmul_gflops):
    achieved = gflop / s_per_iter
    return {
        "gflop_per_iter": round(gflop, 2),
        "achieved_gflops": round(achieved, 1),
        "matmul_gflops": round(matmul_gflops, 1),
        "fraction_of_peak": round(achieved / matmul_gflops, 3),
    }


def bench_ours(args):
    import tensorflow as tf

    from pgn_tf import models, train_lib
    from pgn_tf.flops import graph_flops

    rss_after_import = common.rss_mib("VmRSS")

    tf.config.threading.set_inter_op_parallelism_threads(args.inter_op)
    tf.config.threading.set_intra_op_parallelism_threads(args.intra_op)
    cond = models.is_conditional(args.arch)
    config = common.arch_config(
        args.arch, args.loss, normalization=args.normalization, penalty=args.penalty, n_dis=args.n_dis,
        batch_size_D=args.batch_size_D, batch_size_G=args.batch_size_G, precision=args.precision,
        augment=args.augment, augment_p=args.augment_p,
    )  # fmt: skip
    gan = train_lib.build_gan(config)
    size = models.image_size(args.arch)
    n = args.n_dis * args.batch_size_D
    x = tf.random.uniform((n, size, size, 3), -1, 1)
    y = tf.random.uniform((n,), 0, 10, tf.int32)
    step = tf.function(gan.train_step, jit_compile=args.jit)
    b = args.batch_size_D
    critic = tf.function(lambda: [gan.critic_step(x[:b], y[:b] if cond else None)
                                  for _ in range(args.n_dis)], jit_compile=args.jit)  # fmt: skip
    generator = tf.function(lambda: gan.generator_step(args.batch_size_G), jit_compile=args.jit)
    # .numpy() waits for the result, so each time covers the whole iteration.
    total = _time(lambda: step((x, y))["g_loss"].numpy(), args.iters, args.warmup)
    crit = _time(lambda: critic()[-1]["d_loss"].numpy(), args.iters, args.warmup)
    gen = _time(lambda: generator().numpy(), args.iters, args.warmup)
    m = train_lib.LIPSCHITZ_IMAGES
    lipschitz = tf.function(gan.lipschitz)
    real = tf.random.uniform((m, size, size, 3), -1, 1)
    inputs = (
        real,
        tf.random.normal((m, gan.z_dim)),
        tf.random.uniform((m,)),
        y[:1].numpy().repeat(m) if cond else None,
    )
    monitor = statistics.median(_time(lambda: lipschitz(*inputs)["interp_max"].numpy(), args.iters, args.warmup))
    out = _summary("pgn_tf" + (" (XLA)" if args.jit else ""), args, total, crit, gen)
    per_iter = out["s_per_iter"]["median"]
    flops, partial = graph_flops(step.get_concrete_function((x, y)).graph)
    dtype = {"mixed_bfloat16": tf.bfloat16, "mixed_float16": tf.float16}.get(args.precision, tf.float32)
    a = tf.cast(tf.random.normal((MATMUL_N, MATMUL_N)), dtype)
    matmul = tf.function(lambda: tf.linalg.matmul(a, a))
    out.update(_rates(flops / 1e9, per_iter, _matmul_gflops(lambda: matmul().numpy())))
    out.update(_diagnostics_cost(gan, step, (x, y), flops, args))
    if args.augment:
        bare = train_lib.build_gan(
            dataclasses.replace(config, loop=dataclasses.replace(config.loop, augment="", augment_p=1.0))
        )
        bare_step = tf.function(bare.train_step, jit_compile=args.jit)
        out.update(
            augment=args.augment,
            augment_p=args.augment_p,
            **_alternated("augment_over_none", step, bare_step, (x, y), args),
        )
    out.update(
        rss_after_import_mib=rss_after_import,
        flops_partial=partial,
        penalty=args.penalty,
        monitor_s=monitor,
        monitor_over_iter=round(monitor / per_iter, 4),
        log_every=args.log_every,
        monitor_share=round(monitor / (monitor + args.log_every * per_iter), 5),
    )
    return out


def _diagnostics_cost(gan, step, batch, flops, args):
    """The diagnostics' share of an iteration: FLOPs, and time with / without them, alternated."""
    import tensorflow as tf

    from pgn_tf import diagnostics
    from pgn_tf.flops import graph_flops

    # The bare step is traced with zeros in their place (and keeps them); the GAN gets its own back.
    with_them, gan.diagnostics = gan.diagnostics, diagnostics.zeros
    try:
        bare = tf.function(gan.train_step, jit_compile=args.jit)
        bare_flops, _ = graph_flops(bare.get_concrete_function(batch).graph)
    finally:
        gan.diagnostics = with_them
    timed = _alternated("with_over_without", step, bare, batch, args)["with_over_without"]
    return {
        "diagnostics_flop_share": round((flops - bare_flops) / flops, 6),
        "diagnostics_time_share": round(1 - 1 / timed, 4),
    }


def _alternated(name, step, other, batch, args):
    """{name: median time of step / median time of other}, the two traced iterations alternated --iters times."""
    a, b = [], []
    for _ in range(args.warmup):
        other(batch)["g_loss"].numpy()
    for _ in range(args.iters):
        a += _time(lambda: step(batch)["g_loss"].numpy(), 1, 0)
        b += _time(lambda: other(batch)["g_loss"].numpy(), 1, 0)
    return {name: round(statistics.median(a) / statistics.median(b), 4)}


def bench_official(args):
    import torch

    official = common.Official(args.official_dir)

    rss_after_import = common.rss_mib("VmRSS")

    torch.manual_seed(0)
    G, D = official.models(args.arch)
    loss_fn = official.loss(args.loss)
    opt_g = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.0, 0.9))
    opt_d = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.0, 0.9))
    size = int(args.arch.split(".")[1])
    b, bg = args.batch_size_D, args.batch_size_G
    x = torch.rand(args.n_dis * b, 3, size, size) * 2 - 1
    y = torch.randint(10, (args.n_dis * b,))
    cond = args.arch.startswith("biggan")

    def apply(net_d, images, labels):
        kw = {"y": labels} if cond else {}
        if args.normalization == "pgn":
            return official.pgn(net_d, images, **kw)
        if args.normalization == "gn":
            return official.gn(net_d, images, **kw)
        return net_d(images, **kw)

    def critic():
        for k in range(args.n_dis):
            opt_d.zero_grad()
            with torch.no_grad():
                yf = torch.randint(10, (b,))
                fake = G(torch.randn(b, 128), yf).detach()
            pred = apply(D, torch.cat([x[k * b : (k + 1) * b], fake]), torch.cat([y[k * b : (k + 1) * b], yf]))
            loss, _, _ = loss_fn(pred[:b], pred[b:])
            loss.backward()
            opt_d.step()

    def generator():
        for p in D.parameters():
            p.requires_grad_(False)
        opt_g.zero_grad()
        yf = torch.randint(10, (bg,))
        loss = loss_fn(apply(D, G(torch.randn(bg, 128), yf), yf))
        loss.backward()
        opt_g.step()
        for p in D.parameters():
            p.requires_grad_(True)

    def iteration():
        critic()
        generator()

    total = _time(iteration, args.iters, args.warmup)
    out = _summary(f"official PyTorch {torch.__version__}", args, total, _time(critic, args.iters, 0),
                   _time(generator, args.iters, 0))  # fmt: skip
    a = torch.randn(MATMUL_N, MATMUL_N)
    out.update(rss_after_import_mib=rss_after_import, matmul_gflops=round(_matmul_gflops(lambda: a @ a), 1))
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="dcgan.32")
    parser.add_argument("--normalization", default="pgn", choices=["pgn", "gn", "sn", "none"])
    parser.add_argument("--penalty", default=None, choices=["gp1", "gp0", "r1"])
    parser.add_argument("--precision", default="float32", choices=["float32", "mixed_bfloat16", "mixed_float16"])
    parser.add_argument("--log_every", type=int, default=100, help="monitor_share: one monitor call per this many")
    parser.add_argument("--loss", default="hinge", choices=["hinge", "bce"])
    parser.add_argument("--n_dis", type=int, default=1)
    parser.add_argument("--batch_size_D", type=int, default=64)
    parser.add_argument("--batch_size_G", type=int, default=128)
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--jit", action="store_true", help="XLA-compile our step")
    parser.add_argument("--inter_op", type=int, default=0, help="TF inter-op threads (0: TF's default)")
    parser.add_argument("--intra_op", type=int, default=0, help="TF intra-op threads (0: TF's default)")
    parser.add_argument("--augment", default="", help="a DiffAugment policy, e.g. color,translation,cutout")
    parser.add_argument("--augment_p", default=1.0, type=lambda v: v if v == "ada" else float(v))
    parser.add_argument("--official_dir", default=None)
    parser.add_argument("--only_official", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.official_dir and (args.normalization == "sn" or args.penalty or args.augment):
        parser.error("the official code has no SN critic, no penalty and no augmentation: drop --official_dir")
    if args.only_official:
        print(json.dumps(bench_official(args)), flush=True)
        return
    ours = bench_ours(args)
    print(json.dumps(ours), flush=True)
    if args.official_dir:
        cmd = [sys.executable, os.path.abspath(__file__), *sys.argv[1:], "--only_official"]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
        official = json.loads(out)
        official_s = official["s_per_iter"]["median"]
        official.update(_rates(ours["gflop_per_iter"], official_s, official["matmul_gflops"]))
        print(json.dumps(official), flush=True)
        floor_s = ours["gflop_per_iter"] / ours["matmul_gflops"]
        print(json.dumps({"ours_over_official": round(ours["s_per_iter"]["median"] / official_s, 3),
                          "floor_over_official": round(floor_s / official_s, 3)}), flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
