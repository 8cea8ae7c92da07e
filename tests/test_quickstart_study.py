"""tools/quickstart_study.py: the quickstart trained per method and seed, a PGN variant reaching the train
command as its gin bindings, and the summary from the runs' eval.jsonl."""

import json
import re
import subprocess
import sys

import pytest
from conftest import ROOT, load_tool


def test_methods_become_the_train_commands_bindings_and_the_benchmarks_alone_are_refused(tmp_path):
    tool = load_tool("quickstart_study")
    args, runs = tool.parse_args([f"--out={tmp_path}", "--methods=pgn_cunit,gn,pgn_c0.1_ssqrtd", "--seeds=0,1"])
    assert runs == [("pgn_cunit", 0), ("gn", 0), ("pgn_c0.1_ssqrtd", 0), ("pgn_cunit", 1), ("gn", 1),
                    ("pgn_c0.1_ssqrtd", 1)]  # fmt: skip
    params = [p for p in tool.command(str(tmp_path), "pgn_c0.1_ssqrtd", 1, args) if p.startswith("--gin_param=")]
    assert params == [
        f"--gin_param=train_and_evaluate.{b}"
        for b in ("normalization='pgn'", "pgn_constant=0.1", "pgn_scale='sqrt_d'", "seed=1", "total_steps=1000",
                  "lr_decay_start=1000", "eval_every=250", "num_images=2000")
    ]  # fmt: skip
    for method, why in (("r3", "the benchmark's alone"), ("pgn_newg500", "the benchmark's alone"),
                        ("pgn_q2", "cannot read its part"), ("wgan", "unknown method")):  # fmt: skip
        with pytest.raises(SystemExit):
            tool.parse_args([f"--out={tmp_path}", f"--methods=gn,{method}"])
        with pytest.raises(ValueError, match=why):
            tool.study.method_bindings(method)
    with pytest.raises(SystemExit):  # argparse's one usage line and exit 2, not a traceback
        tool.parse_args([f"--out={tmp_path}", "--seeds=0,one"])


def test_summary_gives_each_methods_scores_over_seeds_and_leaves_unfinished_runs_out(tmp_path):
    tool = load_tool("quickstart_study")
    args, runs = tool.parse_args([f"--out={tmp_path}", "--methods=pgn,gn", "--seeds=0,1", "--steps=4",
                                  "--eval_every=2"])  # fmt: skip
    scores = {("pgn", 0): (40.0, 30.0), ("pgn", 1): (60.0, 10.0), ("gn", 0): (50.0, None)}  # FID at 2, 4
    for (method, seed), fids in scores.items():
        workdir = tmp_path / "runs" / f"{method}_seed{seed}"
        workdir.mkdir(parents=True)
        steps = (2, 4) if fids[1] is not None else (2,)
        rows = [{"step": s, "FID": f, "IS": 2.0 + seed, "FID_ema": 5.0, "IS_ema": 3.0, "recall": 0.5}
                for s, f in zip(steps, fids)]  # fmt: skip
        if seed == 0:
            rows = [{**r, "feature_net_fingerprint": "f00d"} for r in rows]  # seed 1's rows predate the record
        (workdir / "eval.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        (workdir / "code_version").write_text("abc123\n")
    tool.summarise(str(tmp_path), runs, args)
    summary = (tmp_path / "summary.md").read_text()
    assert "code abc123." in summary
    mixed = "digits classifier's features (fingerprints f00d, not recorded: more than one classifier, not one table)"
    assert mixed in summary
    # G's FID at step 4: 30 and 10 (mean 20, std 10, ddof 0); IS 2 and 3.
    assert (
        "| pgn | 0, 1 | 2.50 +- 0.50 [2.00, 3.00] | 20.0 +- 10.0 [30.0, 10.0] | 3.00 +- 0.00 [3.00, 3.00] |" in summary
    )
    assert "| pgn | 50.0 | 20.0 |" in summary  # FID by step, mean over seeds
    assert "| gn |" not in summary  # gn seed 0 stopped at step 2 of 4, gn seed 1 never ran
    lines = [json.loads(x) for x in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert [(x["method"], x["seed"], x["step"], x["code"]) for x in lines] == [
        ("pgn", 0, 2, "abc123"), ("pgn", 0, 4, "abc123"), ("pgn", 1, 2, "abc123"), ("pgn", 1, 4, "abc123")
    ]  # fmt: skip
    assert (tmp_path / "fid.png").stat().st_size > 0


@pytest.mark.subprocess
def test_a_variant_trains_as_the_quickstart_with_its_constant_and_is_summarised(tmp_path):
    """Two steps of the quickstart with the unit constant, end to end: the operative config has the variant's
    constant, and the run is scored and summarised under this code's version."""
    cmd = [sys.executable, "tools/quickstart_study.py", f"--out={tmp_path}", "--methods=pgn_cunit", "--seeds=0",
           "--steps=2", "--eval_every=2", "--num_images=100"]  # fmt: skip
    subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True)
    run = tmp_path / "runs" / "pgn_cunit_seed0"
    assert "train_and_evaluate.pgn_constant = 'unit'" in (run / "operative_config.gin").read_text()
    summary = (tmp_path / "summary.md").read_text()
    assert "| pgn_cunit | 0 |" in summary and "code -." not in summary
    scored_by = r"digits classifier's features \(fingerprint [0-9a-f]{12}\) against"  # the one that scored it
    assert re.search(scored_by, summary)
    assert json.loads((run / "trained.json").read_text())["minutes"] > 0
