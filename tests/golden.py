"""Golden rendering data: ``tests/data/render/<case>/Pulumi.<case>.yaml`` → ``expected/``.

After a deliberate change to the templates, review the diff of::

    .venv/bin/python -m tests.golden --update
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from orbitlab.rendering import write_rendered_tree
from orbitlab.stack import load_plan

CASES_DIR = Path(__file__).parent / "data" / "render"


def cases() -> list[Path]:
    return sorted(path for path in CASES_DIR.iterdir() if path.is_dir())


def stack_file(case: Path) -> Path:
    return next(case.glob("Pulumi.*.yaml"))


def render_case(case: Path, out: Path) -> list[Path]:
    return write_rendered_tree(load_plan(str(stack_file(case))), out)


def update() -> None:
    for case in cases():
        expected = case / "expected"
        shutil.rmtree(expected, ignore_errors=True)
        written = render_case(case, expected)
        print(f"{case.name}: {len(written)} files")


if __name__ == "__main__":
    if sys.argv[1:] != ["--update"]:
        sys.exit("usage: python -m tests.golden --update")
    update()
