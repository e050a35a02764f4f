"""Every command README.md and docs/ show still works against the code.

Why: the docs are where a researcher copies commands from, and nothing else fails when a
config key, a config group or a script option is renamed -- the command in the docs just
stops working on its first use. So every ``python run.py ...`` in README.md and docs/*.md
must compose against ``conf/`` and pass the run check (``hsd_bench.validate``, without the
device check: the docs show GPU commands too), each job of a ``-m`` sweep expanded as
Hydra's basic sweeper expands it; and every ``--option`` given to a script under
``scripts/`` must be one that script's ``--help`` lists (of its subcommand, where it has
them), and every ``NAME=value`` set before ``bash scripts/<x>.sh`` a variable that script
reads. Nothing is run. Commands with a placeholder (``...``, ``…``, ``<name>``) are
sketches, not commands, and are left out; the docs' history sections (docs/gpu-runs.md's
runs) are checked too, so a removed option shows up where a reader would still try it.
"""

from __future__ import annotations

import functools
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
PLACEHOLDER = re.compile(r"\.\.\.|…|<[\w-]+>")
RUN = re.compile(r"python3? run\.py((?: [^`\n]*)?)")
SCRIPT = re.compile(r"(?<![\w/.-])(?:python3? )?(?:scripts/)?(\w+\.py)((?: [^`\n]*)?)")
OPTION = re.compile(r"(?<![\w-])--[a-z][\w-]*")


@dataclass(frozen=True)
class DocCommand:
    where: str  # file:line
    program: str  # run.py or scripts/<name>.py
    text: str  # what follows the program, up to the end of the line or the inline code span

    def __str__(self) -> str:
        return f"{self.where}: {self.program}{self.text}"


def logical_lines(text: str):
    """(line number, line) with shell continuations (a trailing backslash) joined."""
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        start, line = i + 1, lines[i]
        while line.rstrip().endswith("\\") and i + 1 < len(lines):
            i += 1
            line = line.rstrip()[:-1] + " " + lines[i].strip()
        yield start, line
        i += 1


def commands_in(text: str, name: str) -> list[DocCommand]:
    found = []
    for number, line in logical_lines(text):
        where = f"{name}:{number}"
        found += [DocCommand(where, "run.py", m.group(1)) for m in RUN.finditer(line)]
        for m in SCRIPT.finditer(line):
            if m.group(1) != "run.py" and (ROOT / "scripts" / m.group(1)).is_file():
                found.append(DocCommand(where, f"scripts/{m.group(1)}", m.group(2)))
    return [c for c in found if not PLACEHOLDER.search(c.text)]


@functools.lru_cache(maxsize=None)
def doc_commands() -> tuple[DocCommand, ...]:
    return tuple(c for doc in DOCS for c in commands_in(doc.read_text(encoding="utf-8"), str(doc.relative_to(ROOT))))


def shell_words(text: str) -> list[str]:
    """The command's arguments as the shell passes them: up to ``&&``, ``|`` or ``;``, comments dropped."""
    return shlex.split(re.split(r"&&|\|\||[|;]", text)[0], comments=True)


# ---- run.py: compose and check, as the run command and the sweeper do ------------------------------------


@pytest.fixture(scope="module")
def hydra_conf():
    from hydra import initialize_config_dir

    from hsd_bench.config import register_schemas

    register_schemas()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        yield


def run_jobs(args: list[str]) -> list[list[str]]:
    """The override lists the command runs: one for a single run, every job of a ``-m`` sweep."""
    from hydra import compose
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import OmegaConf

    from hsd_bench.cli import rewrite_exit_lists
    from hsd_bench.sweep_jobs import sweep_jobs

    sweep = any(a in ("-m", "--multirun") for a in args)
    args = [a for a in args if a not in ("-m", "--multirun")]
    if not sweep:
        return [rewrite_exit_lists(["run.py", *args])[1:]]
    parsed = OverridesParser.create().parse_overrides(args)
    plain = [o.input_line for o in parsed if not o.is_sweep_override()]
    params = compose("config", overrides=plain, return_hydra_config=True).hydra.sweeper.params
    return sweep_jobs(OmegaConf.to_container(params) if params else None, args)


def run_command_problem(text: str) -> str | None:
    """Why ``python run.py <text>`` would be refused before it runs, or None."""
    from hydra import compose

    from hsd_bench.validate import validate_any

    try:
        for job in run_jobs(shell_words(text)):
            validate_any(compose("config", overrides=job), hardware=False)
    except Exception as err:  # Hydra's composition errors, our ValueErrors: each is the answer
        return f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
    return None


def test_the_docs_show_run_commands():
    """Guards the extraction: the README's commands are found, so an empty list cannot pass."""
    readme = [c for c in doc_commands() if c.program == "run.py" and c.where.startswith("README.md")]
    assert len(readme) >= 10, [str(c) for c in readme]
    assert any(c.text.strip() == "" for c in readme), "the README's first command, a bare `python run.py`"
    assert any("-m" in shell_words(c.text) for c in doc_commands() if c.program == "run.py"), "a sweep"


def test_every_run_command_in_the_docs_composes_and_passes_the_run_check(hydra_conf, monkeypatch):
    monkeypatch.chdir(ROOT)  # relative checkpoint paths, as a user runs them from the clone
    problems = [f"{c}\n    -> {p}" for c in doc_commands() if c.program == "run.py"
                for p in [run_command_problem(c.text)] if p]
    assert not problems, "\n".join(problems)


def test_a_bad_run_command_is_caught(hydra_conf, monkeypatch):
    """The check can fail: an unknown key, an exit past the model's depth, a bad sweep value."""
    monkeypatch.chdir(ROOT)
    doc = "```\npython run.py method=layerskip method.draft_lenn=4\n```\nand `python run.py exit=99`.\n"
    bad = commands_in(doc, "doc.md") + commands_in("`python run.py -m method=layerskip,nosuchmethod`", "doc.md")
    assert [c.where for c in bad] == ["doc.md:2", "doc.md:4", "doc.md:1"]
    problems = [run_command_problem(c.text) for c in bad]
    assert all(problems), problems
    assert "draft_lenn" in problems[0] and "99" in problems[1] and "nosuchmethod" in problems[2]
    assert run_command_problem("method=hispec exit=3,6   # a comment") is None


# ---- scripts: every option the docs give exists -------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def script_help(script: str, subcommand: str | None) -> str:
    """``--help`` of the script, or of its subcommand where it has that one."""

    def helped(*extra: str) -> str:
        done = subprocess.run([sys.executable, script, *extra, "--help"], cwd=ROOT, capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, f"{script} {' '.join(extra)} --help failed:\n{done.stderr[-2000:]}"
        return done.stdout

    text = helped()
    if subcommand and re.search(r"\{[\w,-]*\b" + re.escape(subcommand) + r"\b[\w,-]*\}", text):
        text = helped(subcommand)
    return text


def unknown_options(command: DocCommand) -> list[str]:
    words = command.text.split()
    subcommand = words[0] if words and re.fullmatch(r"[a-z][\w-]*", words[0]) else None
    options = set(OPTION.findall(script_help(command.program, subcommand)))
    return [o for o in OPTION.findall(command.text.split("#")[0]) if o not in options]


SCRIPTS = sorted({c.program for c in doc_commands() if c.program != "run.py"})


def test_the_docs_show_script_commands():
    assert {"scripts/bench_gpu.py", "scripts/collect.py", "scripts/make_figures.py"} <= set(SCRIPTS), SCRIPTS


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_script_option_in_the_docs_exists(script):
    problems = [f"{c}\n    -> not an option of {script}: {', '.join(u)}" for c in doc_commands() if c.program == script
                for u in [unknown_options(c)] if u]
    assert not problems, "\n".join(problems)


def test_a_bad_script_option_is_caught():
    doc = ("`python scripts/collect.py runs/x --by-categry` and `collect.py runs/x --by-category`,"
           " `python scripts/train_early_exit.py train --preset ee-24x128 --epochs 2`")
    bad, good, sub = commands_in(doc, "doc.md")
    assert unknown_options(bad) == ["--by-categry"]
    assert unknown_options(good) == []
    assert unknown_options(sub) == ["--epochs"], "a subcommand's options are its own"


# ---- shell scripts: every knob the docs set is one the script reads ------------------------------------------

KNOBS = re.compile(r"((?:(?<![\w$])[A-Z][A-Z0-9_]*=[^ `]* )+)(?:bash )?(scripts/\w+\.sh)")


def knob_settings(text: str, name: str) -> list[tuple[str, str, list[str]]]:
    """(file:line, script, the environment variables set before it) for every ``NAME=value bash scripts/x.sh``."""
    return [(f"{name}:{number}", m.group(2), re.findall(r"([A-Z][A-Z0-9_]*)=", m.group(1)))
            for number, line in logical_lines(text) for m in KNOBS.finditer(line)]


def unread_knobs(script: str, names: list[str]) -> list[str]:
    source = (ROOT / script).read_text(encoding="utf-8")
    return [n for n in names if not re.search(r"\$\{?" + n + r"\b", source)]


def test_every_knob_the_docs_set_is_read_by_its_script():
    settings = [s for doc in DOCS for s in knob_settings(doc.read_text(encoding="utf-8"), str(doc.relative_to(ROOT)))]
    assert any(script == "scripts/gpu_headline.sh" for _, script, _ in settings), "the extraction finds none"
    problems = [f"{where}: {script} does not read {', '.join(u)}" for where, script, names in settings
                for u in [unread_knobs(script, names)] if u]
    assert not problems, "\n".join(problems)


def test_an_unread_knob_is_caught():
    (setting,) = knob_settings("`OUT=$OUT PARTS=checks NO_SUCH_KNOB=1 bash scripts/gpu_headline.sh`", "doc.md")
    assert setting[1:] == ("scripts/gpu_headline.sh", ["OUT", "PARTS", "NO_SUCH_KNOB"])
    assert unread_knobs(setting[1], setting[2]) == ["NO_SUCH_KNOB"]
