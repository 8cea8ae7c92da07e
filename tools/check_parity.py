"""Checks the Keras port against parity fixtures computed by the official PyTorch code.

Usage: python tools/check_parity.py [--float64] FIXTURE.npz [FIXTURE.npz ...]

For each fixture prints one line: PASS/FAIL, the fixture, its arch and loss,
and per group the worst error as a fraction of its tolerance (<= 1 passes):
  outputs  critic outputs (raw, PGN, GN) and both losses: relative 1e-4, absolute floor 1e-6
  images   G(z) with batch statistics: absolute 1e-4
  grad_x   input gradient of sum(PGN(D)(x)): 1e-3 of its largest reference value
  d_grads / g_grads  gradient summaries (sum, l2, projections, full tensors) of one
           critic / generator step: 1e-2 x (reference tensor l2 + 1e-4 x model gradient l2)
--float64 recomputes in float64: float noise on our side vanishes, so a correct
port lands far inside the tolerances (a wrong layout or formula does not).
Exits 0 when every fixture passes, 1 when one does not, 2 on unreadable input.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# oneDNN's CPU kernels accumulate float32 more accurately here than the
# fallback ones (dcgan.32 generator gradients: ~0.03 vs ~0.8 of tolerance).
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

from pgn_tf import parity


def main(args):
    dtype = "float64" if "--float64" in args else "float32"
    paths = [a for a in args if a != "--float64"]
    if not paths or any(p.startswith("-") for p in paths):
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    ok = True
    for path in paths:
        try:
            arch, loss, checks = parity.check_fixture(path, dtype)
        except (OSError, KeyError, ValueError) as e:
            print(f"ERROR {path}: {e}", file=sys.stderr)
            return 2
        passed = all(c.ratio <= 1.0 for c in checks)
        ok &= passed
        detail = "  ".join(f"{c.group} {c.ratio:.3g} ({c.where})" for c in checks)
        print(f"{'PASS' if passed else 'FAIL'} {os.path.basename(path)} {arch}/{loss} {dtype}  {detail}", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
