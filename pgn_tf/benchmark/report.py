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


def _critic(key):
    return lambda r: r.get("critic", {}).get(key)


def _probe(key):
    return lambda r: r.get("probe", {}).get(key)


# The critic at the last step (rows written since issue 21): its accuracy, PGN / GN's denominator norm and the
# raw ||grad_x f|| on held-out reals (the Lipschitz probe, for every method).
CRITIC_COLUMNS = {
    "accuracy": _critic("accuracy"),
    "denominator": _critic("grad_norm_mean"),
    "raw grad norm": _probe("raw_real_mean"),
}


def _mean_std(values, digits):
    values = [v for v in values if v is not None]
    if not values:
        return "n/a"
    return f"{np.mean(values):.{digits}f} ± {np.std(values):.{digits}f}"


BOOTSTRAP = 10_000  # resamples of the seeds


def bootstrap_interval(values, level=0.95, seed=0):
    """The percentile bootstrap interval of the mean over seeds: (low, high), or None for fewer than 2 values.

    The seeds are resampled with replacement BOOTSTRAP times (a fixed generator, so a summary is reproducible);
    with 3 seeds the interval is crude (10 distinct resamples), which is why rankings need 5 or more.
    """
    values = np.asarray([v for v in values if v is not None], np.float64)
    if len(values) < 2:
        return None
    means = values[np.random.default_rng(seed).integers(0, len(values), (BOOTSTRAP, len(values)))].mean(axis=1)
    return tuple(float(q) for q in np.quantile(means, [(1 - level) / 2, (1 + level) / 2]))


def _interval(values):
    got = bootstrap_interval(values)
    return "n/a" if got is None else f"[{got[0]:.1f}, {got[1]:.1f}]"


STEP_COLUMNS = 8  # at most this many evaluation steps in a suite's table of modes by step


def _steps_shown(steps):
    """At most STEP_COLUMNS of the sorted evaluation steps, evenly spaced and ending with the last."""
    every = -(-len(steps) // STEP_COLUMNS)
    return steps[len(steps) - 1 :: -every][::-1]


def modes_by_step(rows, suite):
    """Markdown lines: the suite's modes at each evaluation step (`_steps_shown`), per method the mean over the
    seeds evaluated at that step with its 95% bootstrap interval, and how many seeds those are."""
    at = defaultdict(dict)  # {method: {step: [modes of each seed]}}
    for r in rows:
        if r["suite"] == suite and r["method"] != "real data":
            at[r["method"]].setdefault(r["step"], []).append(r["modes"])
    steps = _steps_shown(sorted({step for by in at.values() for step in by}))
    lines = [
        "Modes at each evaluation: mean over the seeds [95% bootstrap interval] (seeds).",
        "",
        "| method | " + " | ".join(f"{step:,}" for step in steps) + " |",
        "|---|" + "---|" * len(steps),
    ]
    for method, by in at.items():
        cells = [
            f"{np.mean(by[step]):.1f} {_interval(by[step])} ({len(by[step])})" if step in by else "-" for step in steps
        ]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return lines


def summary(rows, command=None, notes=()):
    """Markdown: per suite, one row per method with mean ± std over seeds at the last step, and the per-seed values;
    then the modes at each evaluation step (`modes_by_step`)."""
    lines = ["# Mode-collapse benchmark", ""]
    if command:
        lines += [f"Command: `{command}`", ""]
    lines += list(notes)
    for suite, methods in sorted(_final_rows(rows).items()):
        total = suites.num_modes(suite)
        knobs = next(iter(methods.values()))[0]
        lines += ["", f"## {suite} ({total} modes)", ""]
        if "dim" in knobs:  # rows written since the knobs exist
            lines += [f"dim {knobs['dim']}, G output {knobs['g_out']}, loss {knobs['loss']}.", ""]
        # The extra and critic columns that some row of the suite has (older rows lack them).
        every = [r for rs in methods.values() for r in rs]
        columns = {k: (lambda r, k=k: r.get(k)) for k in EXTRA_COLUMNS}
        columns.update(CRITIC_COLUMNS)
        columns = {k: get for k, get in columns.items() if any(get(r) is not None for r in every)}
        lines += [
            "| method | seeds | step | modes | modes, 95% bootstrap interval | hq | kl | "
            + "".join(f"{k} | " for k in columns)
            + "seconds / run | modes per seed |",
            "|---|---|---|---|---|---|---|" + "---|" * len(columns) + "---|---|",
        ]
        for method, rs in methods.items():
            per_seed = ", ".join(f"{r['seed']}: {r['modes']}" for r in rs)
            steps = sorted({r["step"] for r in rs})  # seeds run to different budgets show as a range
            step = str(steps[0]) if len(steps) == 1 else f"{steps[0]}-{steps[-1]}"
            lines.append(
                f"| {method} | {len(rs)} | {step} | {_mean_std([r['modes'] for r in rs], 1)} | "
                f"{_interval([r['modes'] for r in rs])} | {_mean_std([r['hq'] for r in rs], 3)} | {_mean_std([r['kl'] for r in rs], 3)} | "
                + "".join(f"{_mean_std([get(r) for r in rs], 3)} | " for get in columns.values())
                + f"{np.mean([r['seconds'] for r in rs]):.0f} | {per_seed} |"
            )
        lines += ["", *modes_by_step(rows, suite)]
    return "\n".join(lines) + "\n"


def write(out, rows, chosen, seeds, steps=None, command=None, notes=()):
    """DIR/summary.md and the pictures of `rows`: each stacked suite of `chosen` gets its classifier's held-out
    accuracy in the notes and its "real data" rows (the same protocol on real images: the table's ceiling) at
    the suite's step (or `steps`) for `seeds`. Prints what it wrote."""
    from pgn_tf.benchmark import run

    notes = list(notes)
    if any(s.name.startswith("stacked_digits") for s in chosen):
        from pgn_tf.eval import digits_classifier

        net = digits_classifier.load_digits_classifier()
        accuracy = digits_classifier.holdout_accuracy(net)
        notes.append(f"Digits classifier {net.fingerprint} held-out accuracy (297 digits): {accuracy:.3f}.")
    real_rows = []
    for stacked in chosen:
        if stacked.name.startswith("stacked_mnist"):
            from pgn_tf.eval import mnist_classifier

            net = mnist_classifier.load_mnist_classifier()
            accuracy = mnist_classifier.holdout_accuracy(net)
            notes.append(f"MNIST classifier {net.fingerprint} held-out accuracy (1,000 real digits): {accuracy:.3f}.")
            real_rows += run.real_rows(stacked, seeds, steps or stacked.steps)
    with open(os.path.join(out, "summary.md.tmp"), "w") as f:
        f.write(summary(rows + real_rows, command, notes))
    os.replace(os.path.join(out, "summary.md.tmp"), os.path.join(out, "summary.md"))
    for path in plots(out, rows):
        print(f"wrote {path}", flush=True)
    print(f"wrote {os.path.join(out, 'summary.md')}", flush=True)


def _save(fig, path):
    fig.savefig(path + ".tmp.png", dpi=fig.dpi)
    os.replace(path + ".tmp.png", path)


def plots(out, rows):
    """Writes DIR/<suite>_samples.png, <suite>_modes.png, <suite>_critic.png (rows with diagnostics) and
    <mixture>_dims.png (a mixture run at several --dim); returns their paths."""
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
                    else:
                        _no_samples(ax)
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

            written.append(_modes_plot(plt, out, rows, suite, names))
        else:
            fig, axes = plt.subplots(1, len(names), figsize=(max(2.2 * len(names), 4.5), 2.6), dpi=80, squeeze=False)
            for ax, method in zip(axes[0], names):
                path = os.path.join(out, "samples", f"{suite}_{method}_seed{seeds[0]}.png")
                if os.path.isfile(path):
                    ax.imshow(plt.imread(path))
                else:
                    _no_samples(ax)
                ax.set(xticks=[], yticks=[], title=method)
            fig.suptitle(f"{suite}: 64 samples of G at the last step (seed {seeds[0]})", fontsize=9)
            fig.tight_layout()
            written.append(os.path.join(out, f"{suite}_samples.png"))
            _save(fig, written[-1])
            plt.close(fig)
            written.append(_modes_plot(plt, out, rows, suite, names))
        if any("critic" in r for r in rows if r["suite"] == suite):
            written.append(_critic_plot(plt, out, rows, suite, names))
    written += _dims_plots(plt, out, rows)
    return written


def _no_samples(ax):
    """Says so in a panel whose run has no samples/ file (results merged from elsewhere, say)."""
    ax.text(0.5, 0.5, "no samples", transform=ax.transAxes, ha="center", va="center", fontsize=7, color="gray")


_VARIANT_COLORS = {}  # a PGN variant's colour, given in the order variants are first drawn


def _color(method):
    """One colour per method in every picture: matplotlib's tab10 in METHODS order; PGN's variants (pgn_<parts>)
    each the next of tab20b's five hues (dark, then light), none of them tab10's, in the order first drawn."""
    from pgn_tf.benchmark.run import METHODS

    if method in METHODS:
        return f"C{METHODS.index(method) % 10}"
    if method not in _VARIANT_COLORS:
        import matplotlib

        shades = matplotlib.colormaps["tab20b"].colors
        palette = shades[::4] + shades[2::4]
        _VARIANT_COLORS[method] = palette[len(_VARIANT_COLORS) % len(palette)]
    return _VARIANT_COLORS[method]


def _curve(ax, rows, suite, method, value, label=None):
    """value(row) against step for one (suite, method): the mean over seeds, a band of ± one std."""
    by_step = defaultdict(list)
    for r in rows:
        if r["suite"] == suite and r["method"] == method and value(r) is not None:
            by_step[r["step"]].append(value(r))
    if not by_step:
        return
    steps = sorted(by_step)
    mean = np.array([np.mean(by_step[s]) for s in steps])
    std = np.array([np.std(by_step[s]) for s in steps])
    ax.plot(steps, mean, marker="o", ms=3, label=label or method, color=_color(method))
    ax.fill_between(steps, mean - std, mean + std, alpha=0.15, color=_color(method))


def _modes_plot(plt, out, rows, suite, names):
    """DIR/<suite>_modes.png: modes covered against steps (and recall / coverage where the rows have them)."""
    diversity = [k for k in ("recall", "coverage") if any(r.get(k) is not None for r in rows if r["suite"] == suite)]
    fig, axes = plt.subplots(1, 1 + len(diversity), figsize=(5 + 3.4 * len(diversity), 3.2), dpi=80, squeeze=False)
    for method in names:
        _curve(axes[0, 0], rows, suite, method, lambda r: r["modes"])
        for ax, k in zip(axes[0, 1:], diversity):
            _curve(ax, rows, suite, method, lambda r, k=k: r.get(k))
    axes[0, 0].set(xlabel="step", ylabel="modes covered", title=f"{suite}: mean ± std over seeds")
    axes[0, 0].axhline(suites.num_modes(suite), color="grey", lw=0.5, ls="--")
    axes[0, 0].legend(fontsize=7, ncol=2)
    for ax, k in zip(axes[0, 1:], diversity):
        ax.set(xlabel="step", ylabel=k, ylim=(0, 1.02), title=f"{k} (its classifier's features)")
    fig.tight_layout()
    path = os.path.join(out, f"{suite}_modes.png")
    _save(fig, path)
    plt.close(fig)
    return path


# The critic against steps: what each panel shows, and how it is read from a results line.
CRITIC_PANELS = (
    ("accuracy (f_hat on the right side)", _critic("accuracy")),
    ("d_loss (BCE at chance: 2 ln 2)", _critic("d_loss")),
    ("denominator: ||1 - grad f|| (PGN), ||grad f|| (GN)", _critic("grad_norm_mean")),
    ("raw ||grad_x f|| on held-out reals", _probe("raw_real_mean")),
    ("raw f on reals (mean)", _critic("f_real_mean")),
    ("saturated: share of |f_hat| > 0.99", _critic("saturated")),
)


def _critic_plot(plt, out, rows, suite, names):
    """DIR/<suite>_critic.png: the critic's diagnostics against steps, one curve per method (mean ± std over seeds)."""
    fig, axes = plt.subplots(2, 3, figsize=(12, 6), dpi=80)
    for ax, (title, value) in zip(axes.flat, CRITIC_PANELS):
        for method in names:
            _curve(ax, rows, suite, method, value)
        ax.set(xlabel="step", title=title)
        ax.title.set_fontsize(9)
    axes[0, 1].axhline(2 * np.log(2), color="grey", lw=0.5, ls="--")
    axes[1, 0].set_yscale("log")  # PGN's raw gradients sit orders of magnitude below the others
    axes[0, 0].legend(fontsize=7, ncol=2)
    fig.suptitle(f"{suite}: the critic", fontsize=10)
    fig.tight_layout()
    path = os.path.join(out, f"{suite}_critic.png")
    _save(fig, path)
    plt.close(fig)
    return path


def _dims_plots(plt, out, rows):
    """DIR/<mixture>_dims.png where a mixture ran at several --dim: last-step scores against D, per method."""
    last = [r for rs in _final_rows(rows).values() for r_list in rs.values() for r in r_list]
    written = []
    for base in sorted({suites.base(r["suite"]) for r in last if suites.base(r["suite"]) in suites.MIXTURES}):
        mine = [r for r in last if suites.base(r["suite"]) == base and "dim" in r]
        dims = sorted({r["dim"] for r in mine})
        if len(dims) < 2:
            continue
        panels = (
            ("modes in the plane", lambda r: r["modes"]),
            ("modes in all D", lambda r: r.get("modes_full", r["modes"])),
            ("median off-plane distance", lambda r: r.get("off_plane", 0.0)),
            ("denominator (PGN: ||1 - grad f||)", lambda r: r.get("critic", {}).get("grad_norm_mean")),
        )
        fig, axes = plt.subplots(1, 4, figsize=(14, 3.2), dpi=80)
        for ax, (title, value) in zip(axes, panels):
            for method in dict.fromkeys(r["method"] for r in mine):
                points = [(d, [value(r) for r in mine if r["method"] == method and r["dim"] == d]) for d in dims]
                points = [(d, [v for v in vs if v is not None]) for d, vs in points]
                points = [(d, vs) for d, vs in points if vs]
                if points:
                    x = [d for d, _ in points]
                    y = np.array([np.mean(vs) for _, vs in points])
                    e = np.array([np.std(vs) for _, vs in points])
                    ax.errorbar(x, y, yerr=e, marker="o", ms=3, capsize=2, label=method, color=_color(method))
            ax.set(xscale="log", xlabel="D", title=title)
            ax.title.set_fontsize(9)
        axes[3].plot(dims, np.sqrt(dims), color="grey", lw=0.8, ls="--", label="sqrt(D)")
        axes[0].axhline(suites.num_modes(base), color="grey", lw=0.5, ls="--")
        axes[0].legend(fontsize=7)
        axes[3].legend(fontsize=7)
        fig.suptitle(f"{base} embedded in D dimensions: the last step, mean ± std over seeds", fontsize=10)
        fig.tight_layout()
        written.append(os.path.join(out, f"{base}_dims.png"))
        _save(fig, written[-1])
        plt.close(fig)
    return written
