"""The documentation points at things that exist: every dotted name, repository path and relative link.

Scanned: README.md, CHANGELOG.md and every Markdown file under docs/ and pairs_assets/. In code (inline
spans and fenced blocks) a dotted name rooted at one of the project's packages —
``pairs_assets.quant.rule.step``, ``quant.stages.garch_stage_many`` (read as ``pairs_assets.quant…``),
``resources.bar_sources.BarSource``, ``pairs_assets_tests.update_graph_snapshot`` — must import and
resolve attribute by attribute; a repository path (``pairs_assets/quant/rule.py``, ``deploy/dagster.yaml``)
must exist. A relative Markdown link must name an existing file, and its ``#anchor`` a heading of that
file (GitHub's slugs). Placeholders (``<name>``, ``…``, ``*``) are not references and are skipped.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ROOTS = ("pairs_assets", "pairs_assets_tests", "resources", "sensors")
#: the one sub-package the docs name without its parent (``quant.rule.step``); other short names
#: (``instance.…``, ``market.…``) are as often a variable as a package, so they are written in full
SHORT_ROOTS = ("quant",)
PATH_PREFIXES = ("pairs_assets/", "pairs_assets_tests/", "resources/", "sensors/", "deploy/", "docs/", ".ci/")
PLACEHOLDER = re.compile(r"[<>*…{}$]")
#: files a documented command creates (not in the repository)
CREATED_BY_A_COMMAND = {"deploy/.env"}

FENCE = re.compile(r"^(```|~~~)")
INLINE_CODE = re.compile(r"`([^`\n]+)`")
LINK = re.compile(r"(?<!!)\[[^\]\n]*\]\(([^)\s]+)\)|!\[[^\]\n]*\]\(([^)\s]+)\)")
DOTTED = re.compile(r"(?<![\w./-])([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+)")
PATHLIKE = re.compile(r"(?<![\w./<-])((?:\.ci|[A-Za-z_]\w*)/[\w./-]*)")


def doc_files() -> list[Path]:
    files = [ROOT / "README.md", ROOT / "CHANGELOG.md"]
    files += sorted((ROOT / "docs").rglob("*.md"))
    files += sorted((ROOT / "pairs_assets").rglob("*.md"))
    return [f for f in files if f.exists()]


def split_code_and_prose(text: str) -> tuple[list[str], list[str]]:
    """(code snippets: inline spans and fenced lines, prose lines without their inline code)."""
    code, prose, fenced = [], [], False
    for line in text.splitlines():
        if FENCE.match(line.strip()):
            fenced = not fenced
            continue
        if fenced:
            code.append(line)
        else:
            code.extend(INLINE_CODE.findall(line))
            prose.append(INLINE_CODE.sub(" ", line))
    return code, prose


def slug(heading: str) -> str:
    """GitHub's anchor of a Markdown heading."""
    text = heading.strip().lstrip("#").strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    found, fenced = set(), False
    for line in path.read_text().splitlines():
        if FENCE.match(line.strip()):
            fenced = not fenced
        elif not fenced and re.match(r"#{1,6} ", line):
            found.add(slug(line))
    return found


def resolve_dotted(name: str) -> str | None:
    """None when ``name`` resolves, else why not."""
    parts = name.split(".")
    if parts[0] in SHORT_ROOTS:
        parts = ["pairs_assets", *parts]
    for cut in range(len(parts), 0, -1):
        module_name = ".".join(parts[:cut])
        try:
            obj = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and module_name.startswith(exc.name) or exc.name == module_name:
                continue
            return f"importing {module_name} failed: {exc}"
        for attr in parts[cut:]:
            if not hasattr(obj, attr):
                return f"{'.'.join(parts[:cut])} has no {'.'.join(parts[cut:])}"
            obj = getattr(obj, attr)
        return None
    return f"no module {parts[0]}"


def references(kind: str) -> list[tuple[str, str]]:
    refs = set()
    for path in doc_files():
        rel = str(path.relative_to(ROOT))
        code, prose = split_code_and_prose(path.read_text())
        if kind == "dotted":
            for snippet in code:
                for name in DOTTED.findall(snippet):
                    if name.split(".")[0] in ROOTS + SHORT_ROOTS and not name.endswith(
                        (".py", ".md", ".json", ".yaml")
                    ):
                        refs.add((rel, name))
        elif kind == "path":
            for snippet in code:
                for name in PATHLIKE.findall(snippet):
                    name = name.rstrip(".,:;")
                    if (
                        name.startswith(PATH_PREFIXES)
                        and not PLACEHOLDER.search(name)
                        and name not in CREATED_BY_A_COMMAND
                    ):
                        refs.add((rel, name))
        else:
            for line in prose:
                for target in LINK.findall(line):
                    target = target[0] or target[1]
                    if not re.match(r"[a-z]+:", target):
                        refs.add((rel, target))
    return sorted(refs)


def test_the_scan_finds_references():
    # guards the scanner itself: the README alone names these
    assert ("README.md", "docs/architecture.md") in references("link")
    assert any(name == "pairs_assets.quant.rule.step" or name == "quant.rule.step" for _f, name in references("dotted"))
    assert any(name.startswith("pairs_assets/") for _f, name in references("path"))


@pytest.mark.parametrize(("doc", "name"), references("dotted"))
def test_dotted_name_resolves(doc, name):
    problem = resolve_dotted(name)
    assert problem is None, f"{doc}: `{name}`: {problem}"


@pytest.mark.parametrize(("doc", "name"), references("path"))
def test_repository_path_exists(doc, name):
    assert (ROOT / name).exists(), f"{doc}: `{name}` does not exist in the repository"


@pytest.mark.parametrize(("doc", "target"), references("link"))
def test_relative_link_resolves(doc, target):
    file_part, _, anchor = target.partition("#")
    source = ROOT / doc
    linked = (source.parent / file_part).resolve() if file_part else source
    assert linked.exists(), f"{doc}: link ({target}) names a missing file"
    if anchor and linked.suffix == ".md":
        assert anchor in anchors(linked), f"{doc}: link ({target}): no heading #{anchor} in {linked.relative_to(ROOT)}"


def test_slug_matches_github():
    assert slug("## Environment variables read outside `Paths`") == "environment-variables-read-outside-paths"
    assert slug("### Time: the as-of rule") == "time-the-as-of-rule"
    assert (
        slug("## Issue 10: the local instance's batched event log") == "issue-10-the-local-instances-batched-event-log"
    )


ENV_NAME = re.compile(r"^(PAIRS|ALPACA|MLFLOW|DAGSTER)_[A-Z0-9_]+$")
#: string constants of the product that look like environment variables and are not
NOT_ENVIRONMENT = {
    "ALPACA_DOMAIN",  # live/stream.py: Alpaca's host name suffix
    "PAIRS_COLUMNS",  # quant/cointegration.py: the cointegrated_pairs column list
}


def environment_variables_in_code() -> dict[str, list[str]]:
    import ast

    names: dict[str, set[str]] = {}
    for package in ("pairs_assets", "resources", "sensors"):
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Constant) and isinstance(node.value, str) and ENV_NAME.match(node.value):
                    names.setdefault(node.value, set()).add(str(path.relative_to(ROOT)))
    return {name: sorted(files) for name, files in sorted(names.items()) if name not in NOT_ENVIRONMENT}


def test_every_environment_variable_the_code_names_is_documented():
    """README.md or docs/ name each one in code (`NAME`): the tables of operations.md and production.md,
    and operations.md's list of those read outside ``Paths`` with why."""
    docs = "\n".join(path.read_text() for path in doc_files())
    undocumented = {name: files for name, files in environment_variables_in_code().items() if f"`{name}`" not in docs}
    assert not undocumented, f"environment variables named in code but not in the docs: {undocumented}"
    assert "PAIRS_ALLOW_LIVE_TRADING" in environment_variables_in_code()  # the scan itself works
