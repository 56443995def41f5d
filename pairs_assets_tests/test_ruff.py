"""The tree passes ruff: its linter and its formatter, as configured in pyproject.toml ([tool.ruff]).

Run by the default test command, so CI (``.ci/run``) runs them. ``ruff`` comes with the ``dev`` extra.
A finding that ``ruff check --fix`` cannot fix by itself (an unsafe fix or none) needs a person and
always fails here. The two whole-tree checks wait for the one formatting pass of the merged tree
(issue 20 item 4: ``ruff format .`` then ``ruff check --fix .``, in their own commit); until then they
are expected to fail (``strict``: once the tree is clean they pass, and the marker must go).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: Set to True in the commit that runs ``ruff format .`` and ``ruff check --fix .`` on the whole tree.
TREE_FORMATTED = True
pending_tree_format = pytest.mark.xfail(
    not TREE_FORMATTED,
    strict=True,
    reason="waits for the one whole-tree `ruff format .` + `ruff check --fix .` commit (issue 20 item 4)",
)


def ruff(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ruff", *args, "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )


def test_no_lint_finding_needs_a_hand_fix():
    result = ruff("check", "--output-format", "json", "--exit-zero", ".")
    assert result.returncode == 0, result.stderr
    findings = json.loads(result.stdout)
    by_hand = [
        f"{Path(f['filename']).relative_to(ROOT)}:{f['location']['row']}: {f['code']} {f['message']}"
        for f in findings
        if not f.get("fix") or f["fix"].get("applicability") != "safe"
    ]
    assert by_hand == [], "ruff findings that --fix does not fix:\n" + "\n".join(by_hand)


@pending_tree_format
def test_ruff_check_is_clean():
    result = ruff("check", "--output-format", "concise", ".")
    assert result.returncode == 0, result.stdout + result.stderr


@pending_tree_format
def test_ruff_format_is_clean():
    result = ruff("format", "--check", ".")
    assert result.returncode == 0, result.stdout + result.stderr
