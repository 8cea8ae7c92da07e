"""Peak memory of a training iteration against gradient accumulation: python tools/bench_accumulation.py

  [--arch resnet.128 --batch_size_D 64 --batch_size_G 128 --accumulation 1,2,4 --steps 2]

Each k runs in a fresh process: the models of --arch are built, then --steps
whole iterations (one critic step on batch_size_D reals, one generator step on
batch_size_G, each as k micro-batches of batch / k) run as fit runs them. One
JSON line per k: the micro-batch sizes, peak_rss_mib (the process's VmHWM),
built_rss_mib (after the models and optimizers are built, before the first
iteration), step_mib (their difference: what the iteration adds) and s_per_iter
(the last iteration). n_dis is 1: the critic steps of an iteration run one
after another, so n_dis changes the time, not the peak.
"""

import argparse
import json
import os
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")  # as pgn_tf's commands set it

import common


def measure(args, k):
    import tensorflow as tf

    from pgn_tf import models, train_lib

    config = common.arch_config(args.arch, "hinge", n_dis=1, batch_size_D=args.batch_size_D,
                                batch_size_G=args.batch_size_G, accumulation=k)  # fmt: skip
    gan = train_lib.build_gan(config)
    size = models.image_size(args.arch)
    x = tf.random.uniform((args.batch_size_D, size, size, 3), -1, 1)
    y = tf.zeros((args.batch_size_D,), tf.int32)
    step = tf.function(gan.train_step)
    built = common.rss_mib("VmRSS")
    seconds = None
    for _ in range(args.steps):
        t = time.perf_counter()
        step((x, y))["g_loss"].numpy()
        seconds = time.perf_counter() - t
    peak = common.rss_mib()
    return {
        "arch": args.arch,
        "accumulation": k,
        "micro_batch_D": args.batch_size_D // k,
        "micro_batch_G": args.batch_size_G // k,
        "built_rss_mib": round(built, 1),
        "peak_rss_mib": round(peak, 1),
        "step_mib": round(peak - built, 1),
        "s_per_iter": round(seconds, 2),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="resnet.128")
    parser.add_argument("--batch_size_D", type=int, default=64)
    parser.add_argument("--batch_size_G", type=int, default=128)
    parser.add_argument("--accumulation", default="1,2,4", help="comma-separated k")
    parser.add_argument("--steps", type=int, default=2, help="iterations per k (the first traces)")
    parser.add_argument("--only", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.only is not None:
        print(json.dumps(measure(args, args.only)), flush=True)
        return
    rows = []
    for k in (int(t) for t in args.accumulation.split(",")):
        if args.batch_size_D % k or args.batch_size_G % k:
            parser.error(f"accumulation {k} does not divide the batch sizes")
        cmd = [sys.executable, os.path.abspath(__file__), *sys.argv[1:], f"--only={k}"]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
        rows.append(json.loads(out))
        print(out, flush=True)
    base = rows[0]["step_mib"]
    print(json.dumps({f"step_mib_over_k{rows[0]['accumulation']}": [round(r["step_mib"] / base, 3) for r in rows]}))


if __name__ == "__main__":
    main()
