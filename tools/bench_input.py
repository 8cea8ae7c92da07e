"""Input speed: images/s that pgn_tf.data delivers from a folder of JPEGs, in memory, streamed, and on first decode.

    python tools/bench_input.py [--images=2000] [--sizes=32,128,256] [--batch=64] [--steps=50] [--dir=/tmp/bench_input]

For each size it writes a folder of random JPEGs once (kept in --dir), then
measures, each in a fresh process (sources are shared within one):
  first_decode: decoding and resizing every file into the on-disk cache (in_memory=False, empty cache);
  streamed:     batches read by index from that cache, flipped and converted to float32;
  in_memory:    the same batches from the decoded images held in memory.
One JSON line per measurement: size, mode, images, seconds, images_per_sec.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")  # as pgn_tf's commands set it (the speeds in docs/ are with it)

MODES = ("first_decode", "streamed", "in_memory")


def make_folder(path, n, size):
    """n random size x size JPEGs (smooth noise, so they compress like photos), written once."""
    import tensorflow as tf

    if os.path.isdir(path) and len(os.listdir(path)) >= n:
        return
    os.makedirs(path, exist_ok=True)
    rng = np.random.default_rng(size)
    for i in range(n):
        small = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
        image = tf.cast(tf.image.resize(small[None], (size, size))[0], tf.uint8)
        tf.io.write_file(os.path.join(path, f"{i:06d}.jpg"), tf.io.encode_jpeg(image, quality=90))


def measure(folder, size, mode, batch, steps):
    """One measurement in this process: (images, seconds)."""
    from pgn_tf import data

    cache = os.path.join(folder, ".pgn_tf_cache")
    if mode == "first_decode":
        shutil.rmtree(cache, ignore_errors=True)
        t0 = time.perf_counter()
        data.image_folder(batch, path=folder, size=size, in_memory=False)  # builds the cache, then opens it
        return len([f for f in os.listdir(folder) if f.endswith(".jpg")]), time.perf_counter() - t0
    ds = data.image_folder(batch, path=folder, size=size, in_memory=mode == "in_memory")
    it = iter(ds)
    for _ in range(3):  # warm-up: the pipeline's threads and buffers
        next(it)[0].numpy()
    t0 = time.perf_counter()
    for _ in range(steps):
        next(it)[0].numpy()
    return batch * steps, time.perf_counter() - t0


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=2000)
    p.add_argument("--sizes", default="32,128,256")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--dir", default="/tmp/bench_input")
    p.add_argument("--one", help=argparse.SUPPRESS)  # size,mode: one measurement in this process
    args = p.parse_args()
    if args.one:
        size, mode = int(args.one.split(",")[0]), args.one.split(",")[1]
        n, seconds = measure(os.path.join(args.dir, f"s{size}"), size, mode, args.batch, args.steps)
        print(json.dumps({"size": size, "mode": mode, "images": n, "seconds": round(seconds, 3),
                          "images_per_sec": round(n / seconds, 1)}), flush=True)  # fmt: skip
        return
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    for size in (int(s) for s in args.sizes.split(",")):
        make_folder(os.path.join(args.dir, f"s{size}"), args.images, size)
        for mode in MODES:
            cmd = [sys.executable, __file__, f"--one={size},{mode}", f"--dir={args.dir}", f"--batch={args.batch}",
                   f"--steps={args.steps}"]  # fmt: skip
            out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
            print(out.strip().splitlines()[-1], flush=True)


if __name__ == "__main__":
    main()
