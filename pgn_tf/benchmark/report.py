"""The benchmark's summary table (DIR/summary.md) and pictures (matplotlib PNGs), from DIR/results.jsonl."""

import os
from collections import defaultdict

import numpy as np

from pgn_tf.benchmark import suites


def _final_rows(rows):
    """{suite: {method: [row of each seed's last step]}}, the methods in first-seen order."""
    last = {}
    for r in rows:
        key = (r["suite"], r["method"], r["seed"])
        if key not in last or r["step"] >= last[key]["step"]:
            last[key] = r
    out = defaultdict(dict)
    for (suite, method, _), r in sorted(last.items(), key=lambda kv: (kv[0][0], kv[0][2])):
        out[suite].setdefault(method, []).append(r)
    return out


# Shown beside modes and KL where the rows have them: the image-scale diversity measures (stacked digits) and,
# for a mixture embedded in D > 2 dimensions, its scores in all D and the median distance off the plane.
EXTRA_COLUMNS = ("recall", "coverage", "modes_full", "hq_full", "off_plane")


def _mean_std(values, digits):
    values = [v for v in values if v is not None]
    if not values:
        return "n/a"
    return f"{np.mean(values):.{digits}f} ± {np.std(values):.{digits}f}"


def summary(rows, command=None, notes=()):
    """Markdown: per suite, one row per method with mean ± std over seeds at the last step, and the per-seed values."""
    lines = ["# Mode-collapse benchmark", ""]
    if command:
        lines += [f"Command: `{command}`", ""]
    lines += list(notes)
    for suite, methods in sorted(_final_rows(rows).items()):
        total = len(suites.MIXTURES[suites.base(suite)][0]) if suites.base(suite) in suites.MIXTURES else 1000
        knobs = next(iter(methods.values()))[0]
        lines += ["", f"## {suite} ({total} modes)", ""]
        if "dim" in knobs:  # rows written since the knobs exist
            lines += [f"dim {knobs['dim']}, G output {knobs['g_out']}, loss {knobs['loss']}.", ""]
        # Recall / coverage (digits-classifier features) where the rows have them: stacked digits since issue 20.
        extra = [k for k in EXTRA_COLUMNS if any(r.get(k) is not None for rs in methods.values() for r in rs)]
        lines += [
            "| method | seeds | step | modes | hq | kl | "
            + "".join(f"{k} | " for k in extra)
            + "seconds / run | modes per seed |",
            "|---|---|---|---|---|---|" + "---|" * len(extra) + "---|---|",
        ]
        for method, rs in methods.items():
            per_seed = ", ".join(f"{r['seed']}: {r['modes']}" for r in rs)
            lines.append(
                f"| {method} | {len(rs)} | {rs[0]['step']} | {_mean_std([r['modes'] for r in rs], 1)} | "
                f"{_mean_std([r['hq'] for r in rs], 3)} | {_mean_std([r['kl'] for r in rs], 3)} | "
                + "".join(f"{_mean_std([r.get(k) for r in rs], 3)} | " for k in extra)
                + f"{np.mean([r['seconds'] for r in rs]):.0f} | {per_seed} |"
            )
    return "\n".join(lines) + "\n"


def _save(fig, path):
    fig.savefig(path + ".tmp.png", dpi=fig.dpi)
    os.replace(path + ".tmp.png", path)


def plots(out, rows):
    """Writes DIR/<suite>_samples.png (and DIR/<suite>_modes.png for the mixtures); returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    for suite, methods in sorted(_final_rows(rows).items()):
        names = list(methods)
        seeds = sorted({r["seed"] for rs in methods.values() for r in rs})
        if suites.base(suite) in suites.MIXTURES:
            means, _ = suites.MIXTURES[suites.base(suite)]
            lim = np.abs(means).max() * 1.6
            fig, axes = plt.subplots(len(names), len(seeds), figsize=(1.6 * len(seeds), 1.6 * len(names)), dpi=80,
                                     squeeze=False)  # fmt: skip
            for i, method in enumerate(names):
                for j, seed in enumerate(seeds):
                    ax = axes[i, j]
                    path = os.path.join(out, "samples", f"{suite}_{method}_seed{seed}.npy")
                    if os.path.isfile(path):
                        x = np.load(path)
                        ax.scatter(x[:, 0], x[:, 1], s=1, alpha=0.3, color="tab:blue", rasterized=True)
                    ax.scatter(means[:, 0], means[:, 1], s=8, marker="x", color="tab:red")
                    ax.set(xlim=(-lim, lim), ylim=(-lim, lim), xticks=[], yticks=[])
                    if j == 0:
                        ax.set_ylabel(method)
                    if i == 0:
                        ax.set_title(f"seed {seed}", fontsize=9)
            fig.suptitle(f"{suite}: samples of G at the last step (x: the true means)", fontsize=9)
            fig.tight_layout()
            written.append(os.path.join(out, f"{suite}_samples.png"))
            _save(fig, written[-1])
            plt.close(fig)

            fig, ax = plt.subplots(figsize=(5, 3.2), dpi=80)
            for method in names:
                by_step = defaultdict(list)
                for r in rows:
                    if r["suite"] == suite and r["method"] == method:
                        by_step[r["step"]].append(r["modes"])
                steps = sorted(by_step)
                mean = np.array([np.mean(by_step[s]) for s in steps])
                std = np.array([np.std(by_step[s]) for s in steps])
                ax.plot(steps, mean, marker="o", ms=3, label=method)
                ax.fill_between(steps, mean - std, mean + std, alpha=0.15)
            ax.set(xlabel="step", ylabel="modes covered", title=f"{suite}: mean ± std over seeds")
            ax.axhline(len(means), color="grey", lw=0.5, ls="--")
            ax.legend(fontsize=7, ncol=2)
            fig.tight_layout()
            written.append(os.path.join(out, f"{suite}_modes.png"))
            _save(fig, written[-1])
            plt.close(fig)
        else:
            fig, axes = plt.subplots(1, len(names), figsize=(max(2.2 * len(names), 4.5), 2.6), dpi=80, squeeze=False)
            for ax, method in zip(axes[0], names):
                path = os.path.join(out, "samples", f"{suite}_{method}_seed{seeds[0]}.png")
                if os.path.isfile(path):
                    ax.imshow(plt.imread(path))
                ax.set(xticks=[], yticks=[], title=method)
            fig.suptitle(f"{suite}: 64 samples of G at the last step (seed {seeds[0]})", fontsize=9)
            fig.tight_layout()
            written.append(os.path.join(out, f"{suite}_samples.png"))
            _save(fig, written[-1])
            plt.close(fig)
    return written
