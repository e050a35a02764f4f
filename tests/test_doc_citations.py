"""Every place the code or the docs send a reader to a section of the docs finds it there.

Why: comments, docstrings, result READMEs and the docs themselves cite well over a hundred
sections by name -- ``docs/gpu-runs.md, "Ninth run"``, ``docs/performance.md ("How a run is
timed", rule 4)``, ``[..](performance.md#batches)`` -- and nothing else fails when a heading is
renamed or a section moves to another file (docs/performance.md's run-by-run record moved to
docs/gpu-runs.md in the forty-ninth session): the citation just leads nowhere. So:

* every ``docs/<name>.md`` the project names exists;
* a section quoted right after a docs path is a heading of that file (the heading's start, as
  citations shorten "Ninth run: the look-ahead draft, 2026-12-01" to "Ninth run"), or a bold
  run-in title (``**Finding 1: ...**``);
* every Markdown link to a ``.md`` file in README.md, docs/ and results/ resolves, and its
  ``#anchor`` is one GitHub makes for a heading of that file;
* a GPU run quoted by name in docs/*.md (``"Ninth run"``) is a heading of docs/gpu-runs.md,
  where the runs live.

Nothing is run; the files are read as text.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCANNED_DIRS = ["hsd_bench", "scripts", "tests", "conf", "hydra_plugins", "results", "docs"]
SCANNED_SUFFIXES = {".py", ".md", ".sh", ".yaml"}
# a docs path, then (on the same or the next lines, through a comment's `#`) a quoted section
CITATION = re.compile(
    r'(?P<path>(?:docs/)?[\w-]+\.md)`?[,:]?(?:\s|#)*\(?(?:\s|#)*"(?P<section>[^"\n]{3,160}?(?:\n[^"\n]{0,160}?)?)"')
DOCS_PATH = re.compile(r"(?<![\w/.-])docs/[\w-]+\.md\b")
LINK = re.compile(r"\]\((?P<target>[^)\s#]+\.md)(?:#(?P<anchor>[^)\s]*))?\)")
ORDINAL = (r"(?:First|Second|Third|Fourth|Fifth|Sixth|Seventh|Eighth|Ninth|Tenth|Eleventh|Twelfth"
           r"|\w+teenth|Twentieth|Thirtieth|Fortieth|Fiftieth|(?:Twenty|Thirty|Forty|Fifty|Sixty|Seventy|Eighty|Ninety)-\w+)")
QUOTED_RUN = re.compile(r'"(' + ORDINAL + r' run)"')


def scanned_files() -> list[Path]:
    files = [ROOT / "README.md", ROOT / "run.py"]
    for folder in SCANNED_DIRS:
        files += sorted(p for p in (ROOT / folder).rglob("*")
                        if p.suffix in SCANNED_SUFFIXES and p.is_file() and "__pycache__" not in p.parts)
    return files


@functools.cache
def titles(doc: Path) -> tuple[list[str], list[str]]:
    """(headings, bold run-in titles) of a Markdown file, code fences skipped, backticks dropped."""
    headings, bold = [], []
    fenced = False
    for line in doc.read_text().splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        if fenced:
            continue
        if re.match(r"#{1,6}\s", line):
            headings.append(line.lstrip("#").strip().replace("`", ""))
        elif match := re.match(r"\*\*([^*]+)\*\*", line.strip()):
            bold.append(match.group(1).replace("`", ""))
    return headings, bold


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")


def anchors(doc: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for heading in titles(doc)[0]:
        slug = github_anchor(heading)
        out.add(slug if slug not in seen else f"{slug}-{seen[slug]}")
        seen[slug] = seen.get(slug, 0) + 1
    return out


def names_a_section(doc: Path, section: str) -> bool:
    section = " ".join(section.replace("`", "").split())
    headings, bold = titles(doc)
    return any(title.startswith(section) for title in headings + bold)


def resolve_docs_path(path: str) -> Path:
    return ROOT / path if path.startswith("docs/") or path == "README.md" else ROOT / "docs" / path


def citation_problems(text: str, source: Path) -> list[str]:
    """Every citation in one file's text that leads nowhere, as 'source:line: what'."""
    problems = []

    def where(offset: int) -> str:
        return f"{source.relative_to(ROOT)}:{text.count(chr(10), 0, offset) + 1}"

    for match in DOCS_PATH.finditer(text):
        if not (ROOT / match.group(0)).is_file():
            problems.append(f"{where(match.start())}: {match.group(0)} does not exist")
    # a comment's line breaks and `#` markers inside a quoted section read as spaces
    for match in CITATION.finditer(text):
        path, section = match.group("path"), re.sub(r"\s*#?\s+", " ", match.group("section"))
        doc = resolve_docs_path(path)
        if not path.startswith("docs/") and source.parent != ROOT / "docs":
            continue  # a bare name outside docs/ is not a docs path (e.g. a model card's README.md)
        if not doc.is_file():
            if not path.startswith("docs/"):  # a docs/ path that does not exist is named above
                problems.append(f"{where(match.start())}: {path} does not exist")
        elif not names_a_section(doc, section):
            problems.append(f'{where(match.start())}: {path} has no section "{section}"')
    if source.suffix == ".md":
        for match in LINK.finditer(text):
            target = (source.parent / match.group("target")).resolve()
            if not target.is_file():
                problems.append(f"{where(match.start())}: link to {match.group('target')}, no such file")
            elif match.group("anchor") and match.group("anchor") not in anchors(target):
                problems.append(f"{where(match.start())}: {match.group('target')} has no anchor "
                                f"#{match.group('anchor')}")
    if source.parent == ROOT / "docs":
        for match in QUOTED_RUN.finditer(text):
            if not names_a_section(ROOT / "docs" / "gpu-runs.md", match.group(1)):
                problems.append(f'{where(match.start())}: docs/gpu-runs.md has no "{match.group(1)}"')
    return problems


def test_every_citation_of_a_docs_section_leads_to_it():
    files = scanned_files()
    assert len(files) > 300  # the scan sees the project, not an empty folder
    problems = [p for f in files if f != Path(__file__)  # this file's examples lead nowhere on purpose
                for p in citation_problems(f.read_text(errors="replace"), f)]
    assert problems == []


def test_the_scan_finds_the_citations_it_checks():
    """The patterns match the forms the project writes (so an empty problem list means something):
    over a hundred quoted sections, links with anchors, and runs quoted in the docs."""
    quoted = links = runs = 0
    for f in scanned_files():
        text = f.read_text(errors="replace")
        quoted += sum(1 for m in CITATION.finditer(text) if m.group("path").startswith("docs/"))
        links += sum(1 for m in LINK.finditer(text) if m.group("anchor")) if f.suffix == ".md" else 0
        runs += len(QUOTED_RUN.findall(text)) if f.parent == ROOT / "docs" else 0
    assert quoted > 100 and links >= 5 and runs > 20, (quoted, links, runs)


IN_CODE, IN_DOCS = "hsd_bench/example.py", "docs/example.md"


@pytest.mark.parametrize("source, text, expected", [
    (IN_CODE, 'see docs/gpu-runs.md, "Ninety-ninth run"', 'docs/gpu-runs.md has no section "Ninety-ninth run"'),
    (IN_CODE, '# (docs/performance.md, "How a run\n    # is timed", rule 4)', None),
    (IN_CODE, '# (docs/performance.md, "How a run\n    # is slow", rule 4)',
     'docs/performance.md has no section "How a run is slow"'),
    (IN_CODE, '(docs/gpu-runs.md, "How a run is timed")', 'docs/gpu-runs.md has no section "How a run is timed"'),
    (IN_CODE, "(docs/tuning.md)", "docs/tuning.md does not exist"),
    (IN_CODE, '`docs/methods.md`, "Finding 1"', None),
    (IN_CODE, '`docs/methods.md`, "Finding 9"', 'docs/methods.md has no section "Finding 9"'),
    (IN_DOCS, "[timing](performance.md#how-a-run-is-timed-runpy-and-the-benchmark-share-it)", None),
    (IN_DOCS, "[timing](performance.md#how-a-run-is-timed)", "performance.md has no anchor #how-a-run-is-timed"),
    (IN_DOCS, "[runs](gpu-runs.md)", None),
    (IN_DOCS, 'as performance.md, "Batches" says', None),
    (IN_DOCS, 'as performanse.md, "Batches" says', "performanse.md does not exist"),
    (IN_DOCS, "[runs](gpu_runs.md)", "link to gpu_runs.md, no such file"),
    (IN_DOCS, 'as the "Ninth run" measured', None),
    (IN_DOCS, 'as the "Ninety-ninth run" measured', 'docs/gpu-runs.md has no "Ninety-ninth run"'),
])
def test_a_citation_that_leads_nowhere_is_named_with_its_file_and_line(source, text, expected):
    problems = citation_problems(text, ROOT / source)
    if expected is None:
        assert problems == []
    else:
        assert len(problems) == 1 and problems[0].endswith(expected), problems
        assert problems[0].startswith(f"{source}:1:")


def test_github_anchors_are_made_as_github_makes_them():
    assert github_anchor("How a run is timed (run.py and the benchmark share it)") == \
        "how-a-run-is-timed-runpy-and-the-benchmark-share-it"
    assert github_anchor("Ninth run: the look-ahead draft, 2026-12-01") == "ninth-run-the-look-ahead-draft-2026-12-01"
