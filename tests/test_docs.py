"""The commands README.md and docs/*.md show name only flags their tools have; their links resolve.

The README opens with the set-up command and the test command CI runs, and links every page of docs/;
a table copied from a benchmark summary (docs/benchmark/**/summary.md) says what the summary says, the stored
summaries of the study tools (augment_study, quickstart_study) are what the tools compute from the runs stored
beside them, and the quickstart's scores and the seed-0 rerun's range are those of their stored results files.

A command is `python -m pgn_tf.<tool>`, `pgn-<tool>` or `tools/<script>.py` inside a code block or a code span
(spans may wrap over lines; a block's lines may continue with a backslash). Its flags are the `--name` words
up to the next shell separator (`;`, `&&`, `||`, `|`) or the next command. The package's tools report their
flags with `--helpfull` (one subprocess each, nothing trained); the scripts in tools/ are read, not run:
their argparse `add_argument("--...")`, absl `DEFINE_*("...")` and `"--..."` literals they test argv for.
"""

import ast
import glob
import json
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = [os.path.join(ROOT, "README.md"), *sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))]

FENCE = re.compile(r"^[ \t]*```[^\n]*\n(.*?)^[ \t]*```[ \t]*$", re.MULTILINE | re.DOTALL)
SPAN = re.compile(r"`([^`]+)`")
COMMAND = re.compile(
    r"python3?\s+-m\s+(?P<module>pgn_tf\.\w+)\b"
    r"|(?<![\w./-])pgn-(?P<script>\w+)\b"
    r"|(?<![\w-])(?P<tool>tools/\w+\.py)\b"
)
SEPARATOR = re.compile(r"&&|\|\||[;|]")
FLAG = re.compile(r"(?<![\w-])--([A-Za-z][\w-]*)")
HELP_FLAG = re.compile(r"^\s+(?:-\?,)?--(\[no\])?([A-Za-z][\w-]*):", re.MULTILINE)


def console_scripts():
    """pyproject's console scripts: {"train": "pgn_tf.train", ...} (pgn-train runs pgn_tf.train's cli_main)."""
    with open(os.path.join(ROOT, "pyproject.toml")) as f:
        text = f.read()
    scripts = re.findall(r'^pgn-(\w+)\s*=\s*"([\w.]+):\w+"', text, re.MULTILINE)
    return {name: re.sub(r"\.__main__$", "", target) for name, target in scripts}


def snippets(markdown):
    """The text of every code block (continuation lines joined, # comments dropped) and code span."""
    out = []
    for block in FENCE.findall(markdown):
        for line in block.replace("\\\n", " ").splitlines():
            out.append(re.sub(r"(^|\s)#.*$", "", line))
    for span in SPAN.findall(FENCE.sub("", markdown)):
        if "\n\n" not in span:  # a span never crosses a paragraph: an unpaired backtick, not code
            out.append(" ".join(span.split()))
    return out


def commands(markdown, scripts):
    """[(tool, [flag, ...], the command's text)] for every command shown; tool is a module or tools/ path.

    A `pgn-<name>` that is not a console script is returned with tool "pgn-<name>" (and reported unknown);
    a snippet that starts with a flag (after VAR=value words and "...") names no tool: None.
    """
    found = []
    for text in snippets(markdown):
        matches = list(COMMAND.finditer(text))
        words = [w for w in text.split() if w != "..." and not re.fullmatch(r"[A-Z_]+=\S*", w)]
        if not matches and words and words[0].startswith("--"):  # a bare fragment: `--steps=6000`
            found.append((None, FLAG.findall(text), text))
        for i, m in enumerate(matches):
            end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
            args = SEPARATOR.split(text[m.end() : end], maxsplit=1)[0]
            tool = m["module"] or m["tool"] or scripts.get(m["script"], f"pgn-{m['script']}")
            found.append((tool, FLAG.findall(args), text[m.start() : m.end() + len(args)].strip()))
    return found


def problems(markdown, known, scripts):
    """One line for each command of an unknown tool and each flag its tool (for a bare fragment: any tool) lacks."""
    out = []
    anywhere = set().union(*known.values())
    for tool, names, text in commands(markdown, scripts):
        if tool is None:
            out.extend(f"no tool has --{name}: {text}" for name in names if name not in anywhere)
        elif tool not in known:
            out.append(f"unknown tool {tool}: {text}")
        else:
            out.extend(f"{tool} has no --{name}: {text}" for name in names if name not in known[tool])
    return out


def help_flags(text):
    """Flag names in absl --helpfull output; a boolean --[no]x gives x and nox."""
    names = set()
    for no, name in HELP_FLAG.findall(text.split("\nflags:\n", 1)[-1]):
        names.add(name)
        if no:
            names.add("no" + name)
    return names


def builtin_flags(helpfull):
    """The flags absl (and the libraries) define in every program: --helpfull's sections outside pgn_tf."""
    sections = re.split(r"^(\S[^\n]*):$", helpfull.split("\nflags:\n", 1)[-1], flags=re.MULTILINE)
    names = set()
    for header, body in zip(sections[1::2], sections[2::2]):
        if "pgn_tf" not in header and not header.endswith(".py"):
            names |= help_flags("\nflags:\n" + body)
    return names


def script_flags(path, builtins):
    """The flags a tools/ script defines, read from its source (argparse, absl, or argv literals)."""
    with open(path) as f:
        tree = ast.parse(f.read())
    names, parser = set(), None
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and re.fullmatch(r"--\w[\w-]*", node.value):
            names.add(node.value[2:])  # add_argument("--x") and `"--x" in argv`
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            attr = node.func.attr
            if attr == "ArgumentParser":
                parser = "argparse"
            if attr.startswith("DEFINE_") and node.args and isinstance(node.args[0], ast.Constant):
                parser = "absl"
                names.add(node.args[0].value)
                if attr == "DEFINE_bool" or attr == "DEFINE_boolean":
                    names.add("no" + node.args[0].value)
        # A table of flags: (flags.DEFINE_string, "name", default, help) tuples, defined in a loop.
        if isinstance(node, ast.Tuple) and len(node.elts) >= 2 and isinstance(node.elts[0], ast.Attribute):
            first, second = node.elts[0].attr, node.elts[1]
            if first.startswith("DEFINE_") and isinstance(second, ast.Constant) and isinstance(second.value, str):
                parser = "absl"
                names.add(second.value)
    if parser == "argparse":
        names |= {"h", "help"}
    if parser == "absl":
        names |= builtins
    return names


def _helpfull(module):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    # absl exits 1 after printing the help: the output is checked, not the exit code.
    command = [sys.executable, "-m", module, "--helpfull"]
    proc = subprocess.run(command, check=False, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    return module, proc


@pytest.fixture(scope="module")
def known():
    """{tool: its flag names} for the package's tools (their --helpfull) and every tools/*.py script."""
    modules = sorted(set(console_scripts().values()))
    with ThreadPoolExecutor(max_workers=2) as pool:
        outputs = dict(pool.map(_helpfull, modules))
    flags = {}
    for module, proc in outputs.items():
        flags[module] = help_flags(proc.stdout)
        assert "verbose" in flags[module], f"{module} --helpfull listed no flags:\n{proc.stdout[-2000:]}{proc.stderr}"
    builtins = builtin_flags(outputs["pgn_tf.train"].stdout)
    assert {"helpfull", "logtostderr"} <= builtins
    for path in glob.glob(os.path.join(ROOT, "tools", "*.py")):
        flags[f"tools/{os.path.basename(path)}"] = script_flags(path, builtins)
    return flags


SAMPLE = """\
Train, then export:

```bash
pip install -e . && python -m pgn_tf.train --gin_file=q.gin \\
    --workdir=wd --bogus_flag=1   # --not_a_flag: a comment
until python -m pgn_tf.train --workdir=wd; do [ $? -ge 128 ] || break; done
```

and `pgn-export --workdir=wd
--max_count=8 --nope`, `pgn-frobnicate --x`, `tools/bench_eval.py --images 300`, `pgn-*`, `--images 300` and
`TF_X=0 ... --stepz=6000`.
"""
SAMPLE_KNOWN = {
    "pgn_tf.train": {"gin_file", "workdir"},
    "pgn_tf.export": {"workdir", "max_count"},
    "tools/bench_eval.py": {"images"},
}


def test_commands_are_found_with_their_flags():
    found = [(tool, names) for tool, names, _ in commands(SAMPLE, {"export": "pgn_tf.export"})]
    assert found == [
        ("pgn_tf.train", ["gin_file", "workdir", "bogus_flag"]),
        ("pgn_tf.train", ["workdir"]),
        ("pgn_tf.export", ["workdir", "max_count", "nope"]),
        ("pgn-frobnicate", ["x"]),
        ("tools/bench_eval.py", ["images"]),
        (None, ["images"]),
        (None, ["stepz"]),
    ]


def test_a_made_up_flag_or_tool_is_reported():
    found = problems(SAMPLE, SAMPLE_KNOWN, {"export": "pgn_tf.export"})
    assert [line.split(":")[0] for line in found] == [
        "pgn_tf.train has no --bogus_flag",
        "pgn_tf.export has no --nope",
        "unknown tool pgn-frobnicate",
        "no tool has --stepz",
    ]


def test_docs_name_only_flags_that_exist(known):
    scripts = console_scripts()
    assert set(scripts) == {"train", "evaluate", "export", "benchmark"}
    # The real flag sets are not "anything goes": a made-up flag of each tool is caught.
    fake = "\n".join(f"`python -m {m} --surely_not_a_flag`" for m in scripts.values())
    assert len(problems(fake, known, scripts)) == len(scripts)
    assert problems("`python tools/check_parity.py --float64 --float16 x.npz`", known, scripts) == [
        "tools/check_parity.py has no --float16: tools/check_parity.py --float64 --float16 x.npz"
    ]
    found, shown = [], set()
    for path in DOCS:
        with open(path, encoding="utf-8") as f:
            text = f.read()
        shown |= {tool for tool, _, _ in commands(text, scripts)}
        found += [f"{os.path.relpath(path, ROOT)}: {line}" for line in problems(text, known, scripts)]
    assert not found, "\n".join(found)
    assert set(scripts.values()) <= shown  # every tool's commands were found (the parser reads these docs)


def anchor(heading):
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_links_and_pictures_resolve():
    missing = []
    for path in DOCS:
        with open(path, encoding="utf-8") as f:
            text = FENCE.sub("", f.read())
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"\w+://", target):
                continue
            file, _, fragment = target.partition("#")
            full = os.path.normpath(os.path.join(os.path.dirname(path), file)) if file else path
            if not os.path.exists(full):
                missing.append(f"{os.path.relpath(path, ROOT)}: {target} (no such file)")
            elif fragment:
                with open(full, encoding="utf-8") as f:
                    headings = re.findall(r"^#+ (.+)$", FENCE.sub("", f.read()), re.MULTILINE)
                if fragment not in {anchor(h) for h in headings}:
                    missing.append(f"{os.path.relpath(path, ROOT)}: {target} (no such heading)")
    assert not missing, "\n".join(missing)


def test_readme_opens_with_the_setup_and_the_test_command_ci_runs():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        opening = f.read().split("\n## ", 1)[0]  # before the first section
    with open(os.path.join(ROOT, ".ci", "run")) as f:
        ci = f.read().splitlines()
    setup, tests = [block.strip() for block in FENCE.findall(opening)]
    assert setup.startswith("pip install -r requirements.txt && pip install -e . && python -m pgn_tf.train ")
    assert "--gin_file=gin_configs/quickstart.gin" in setup.split()
    assert tests.startswith("python -m pytest ") and tests in ci  # CI runs exactly the README's test command


def test_readme_links_every_docs_page():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        links = set(re.findall(r"\]\((docs/[^)#\s]+\.md)[)#]", FENCE.sub("", f.read())))
    pages = {f"docs/{os.path.basename(path)}" for path in DOCS[1:]}
    assert pages - links == set()


def tables(markdown):
    """Every pipe table outside code blocks: [{header: cell}] per row, the header line and |---| line skipped."""
    out = []
    for block in re.findall(r"(?:^\|.*\|[ \t]*\n?)+", FENCE.sub("", markdown), re.MULTILINE):
        lines = [[cell.strip() for cell in line.strip()[1:-1].split("|")] for line in block.strip().splitlines()]
        out.append([dict(zip(lines[0], row)) for row in lines[2:]])
    return out


SAME_COLUMN = {"modes (of 1,000)": "modes"}  # a docs table's header -> the summary's


def copies(row, theirs):
    """Whether a docs table's row is the summary's row: the same method and per-seed modes, every shared column alike."""
    row = {SAME_COLUMN.get(header, header): cell for header, cell in row.items()}
    shared = row.keys() & theirs.keys()
    return {"method", "modes per seed"} <= shared and all(row[k] == theirs[k] for k in shared)


# The notes beside stored benchmark tables (docs/benchmark/<folder>/README.md), which copy their rows too.
NOTES = sorted(glob.glob(os.path.join(ROOT, "docs", "benchmark", "**", "README.md"), recursive=True))
STEP = re.compile(r"^\d{1,3}(,\d{3})*$")  # a column of a summary's modes by step: 500, 1,000, 10,000


def _summary_tables():
    out = []
    for path in glob.glob(os.path.join(ROOT, "docs", "benchmark", "**", "summary.md"), recursive=True):
        with open(path, encoding="utf-8") as f:
            out += tables(f.read())
    return out


def test_tables_copied_from_a_benchmark_summary_match_it():
    summary_rows = [row for table in _summary_tables() for row in table if "modes per seed" in row]
    assert len(summary_rows) >= 40
    checked, wrong = 0, []
    for path in DOCS + NOTES:
        with open(path, encoding="utf-8") as f:
            rows = [row for table in tables(f.read()) for row in table if {"method", "modes per seed"} <= set(row)]
        for row in rows:
            if not any(copies(row, theirs) for theirs in summary_rows):
                wrong.append(f"{os.path.relpath(path, ROOT)}: {' | '.join(row.values())}")
            checked += 1
    assert not wrong, "rows no summary has:\n" + "\n".join(wrong)
    assert checked >= 28  # benchmark.md's grid25, ring8, stacked_digits and re-run tables, 7 methods each


def test_modes_by_step_copied_from_a_benchmark_summary_match_it():
    """A docs or notes row of modes at evaluation steps (a "method" column and step columns such as "1,000") is a
    row of some summary's modes-by-step table: the same method and every shared step's cell alike."""

    def by_step(row):
        return {k: v for k, v in row.items() if STEP.match(k)}

    summary_rows = [row for table in _summary_tables() for row in table if "method" in row and by_step(row)]
    checked, wrong = 0, []
    for path in DOCS + NOTES:
        with open(path, encoding="utf-8") as f:
            rows = [row for table in tables(f.read()) for row in table if "method" in row and len(by_step(row)) >= 2]
        for row in rows:
            steps = by_step(row)
            if not any(
                theirs["method"] == row["method"] and all(theirs.get(k) == v for k, v in steps.items())
                for theirs in summary_rows
            ):
                wrong.append(f"{os.path.relpath(path, ROOT)}: {' | '.join(row.values())}")
            checked += 1
    assert not wrong, "rows no summary has:\n" + "\n".join(wrong)
    assert checked >= 4  # the remedy notes' stacked-digits table


def results(*parts):
    """The lines of a stored results file under docs/benchmark/ (or docs/measurements/), as dicts."""
    with open(os.path.join(ROOT, "docs", *parts), encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def test_readme_quickstart_scores_are_the_stored_runs():
    (scores,) = results("benchmark", "why", "quickstart_eval.jsonl")
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        text = " ".join(f.read().split())
    stored = [f"{scores[k]:.1f}" for k in ("IS", "FID", "IS_ema", "FID_ema")]
    assert "IS {} / FID {} for G and IS {} / FID {} for EMA-G".format(*stored) in text


def test_findings_seed0_rerun_range_is_the_stored_one():
    def modes(lines):
        return {(r["method"], r["step"]): r["modes"] for r in lines if r["seed"] == 0}

    first = modes(results("benchmark", "e3", "results.jsonl"))
    rerun = modes(results("benchmark", "e3", "seed0_rerun", "results.jsonl"))
    gaps = [abs(n - first[key]) for key, n in rerun.items()]
    assert len(gaps) == 24  # PGN, GN and SN, 8 evaluations each
    with open(os.path.join(ROOT, "docs", "findings.md"), encoding="utf-8") as f:
        text = " ".join(f.read().split())
    assert f"within {min(gaps)}-{max(gaps)} modes" in text


def test_performance_augment_table_is_the_stored_measurement():
    with open(os.path.join(ROOT, "docs", "performance.md"), encoding="utf-8") as f:
        (table,) = [t for t in tables(f.read()) if t and "with / without" in t[0]]
    stored = results("measurements", "bench_step_time_augment.jsonl")
    expected = [
        {
            "`--augment`": r["augment"],
            "`--augment_p`": "ada" if r["augment_p"] == "ada" else f"{r['augment_p']:g}",
            "s / iteration (median)": f"{r['s_per_iter']['median']:.2f}",
            "with / without": f"{r['augment_over_none']:.3f}",
        }
        for r in stored
    ]
    assert table == expected
    assert all(r["code"] and r["augment_over_none"] > 0 for r in stored)


def _stored_study_rows(tool_name, pattern, code):
    """The rows of each stored summary of a study tool (tools/<tool_name>.py) under docs/benchmark/<pattern>,
    after checking that each summary is what the tool computes from the runs stored beside it (its own command,
    DIR its folder) and that every line came from one code version."""
    from conftest import load_tool

    tool = load_tool(tool_name)
    summaries = glob.glob(os.path.join(ROOT, "docs", "benchmark", pattern), recursive=True)
    rows = []
    for path in summaries:
        with open(path, encoding="utf-8") as f:
            text = f.read()
        (cmd,) = re.findall(rf"Command: `python tools/{tool_name}.py (.*?)`", text)
        args, runs = tool.parse_args(cmd.replace("--out=DIR", f"--out={os.path.dirname(path)}").split())
        lines, md = tool.tabulate(args.out, runs, args)
        assert md == text, path
        assert {line["code"] for line in lines} == {code}
        rows += [row for table in tables(text) for row in table]
    return summaries, rows


def _copied_rows(paths, columns):
    copied = []
    for path in paths:
        with open(os.path.join(ROOT, path), encoding="utf-8") as f:
            copied += [row for table in tables(f.read()) for row in table if columns <= set(row)]
    return copied


def test_augment_study_summaries_are_their_stored_runs_and_the_docs_copy_them():
    """Each stored augmentation-study summary is what tools/augment_study.py computes from the runs stored beside
    it, and every row the README and docs/augmentation.md copy from them is one of their rows in every column it
    shows."""
    summaries, rows = _stored_study_rows(
        "augment_study", os.path.join("augment_study", "**", "summary.md"), "1d7d0b9bb619"
    )
    assert len(summaries) == 3 and len(rows) >= 18 + 3
    copied = _copied_rows(["README.md", os.path.join("docs", "augmentation.md")], {"images", "augment"})
    assert len(copied) >= 18 + 9
    for row in copied:
        assert any(all(theirs.get(k) == v for k, v in row.items()) for theirs in rows), row


def test_quickstart_study_summary_is_its_stored_runs_and_the_docs_copy_it():
    """The quickstart over methods (issue 32's variants) is what tools/quickstart_study.py computes from its stored
    runs, and every row the README and the remedy notes copy from it is one of its rows in every column it shows."""
    summaries, rows = _stored_study_rows(
        "quickstart_study", os.path.join("remedy", "quickstart", "summary.md"), "d287f65affa4"
    )
    assert len(summaries) == 1 and len(rows) == 4 + 4
    notes = os.path.join("docs", "benchmark", "remedy", "README.md")
    copied = _copied_rows(["README.md", notes], {"method", "FID of G"})
    copied += _copied_rows([notes], {"method", "step 1,000"})
    assert len(copied) >= 4 + 4 + 4
    for row in copied:
        assert any(all(theirs.get(k) == v for k, v in row.items()) for theirs in rows), row
