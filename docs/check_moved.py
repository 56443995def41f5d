"""Nothing lost in a documentation move: every line of an earlier README.md is still somewhere.

    python docs/check_moved.py 3c0621b        # the README as of that commit, against the work tree

Every non-blank line of ``git show REV:README.md`` must appear in README.md, CHANGELOG.md or a Markdown
file under docs/ (whitespace collapsed, ``#`` ignored, so a heading may change level). A line split
across places is accepted when each of its clauses (split at ``. ``, ``; ``, `` — ``, ``(``, ``)``) of
four words or more appears somewhere. Prints the lines not found; exit status 1 when there are any.
Issue 20 moved the 1,390-line README into docs/ with it: 9 lines not found — the four of the rewritten
``pairs demo`` timing paragraph (now in docs/benchmarks.md), three stale statements it corrected
(the environment read "in one place", the recent backtest "calling" ``quant.rule.step``) and two
cross-references that became links to other files ("see Production", "see *Does it make money?*").
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def norm(text: str) -> str:
    """Whitespace collapsed; heading marks, emphasis and link targets dropped (``[*x*](y)`` reads ``x``)."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    return " ".join(text.replace("#", " ").replace("*", "").split())


def main(rev: str) -> int:
    old = subprocess.run(
        ["git", "show", f"{rev}:README.md"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    files = [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").rglob("*.md"))]
    corpus = norm("\n".join(f.read_text() for f in files if f.exists()))
    missing = []
    for number, line in enumerate(old.splitlines(), 1):
        text = norm(line)
        if not text or text in corpus:
            continue
        clauses = [c.strip() for c in re.split(r"\. |; | — |\(|\)", text)]
        if all(norm(c) in corpus for c in clauses if len(c.split()) >= 4):
            continue
        missing.append((number, line))
    nonblank = sum(1 for line in old.splitlines() if line.strip())
    print(
        f"{nonblank} non-blank lines in README.md at {rev}; {nonblank - len(missing)} found; {len(missing)} not found"
    )
    for number, line in missing:
        print(f"  {number}: {line}")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "HEAD"))
