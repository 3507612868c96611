"""What ``twin test`` reports (a table of results) and how it asks names (``dig``).

Shared by the checks of :mod:`orbitlab_lab.twin.checks`::

    >>> print(render_table([CheckResult("dns", "web/app1", "app1.web.internal", "A", "A", True)]))
    CHECK  FROM      TO                 EXPECTED  GOT  RESULT
    -----  --------  -----------------  --------  ---  ------
    dns    web/app1  app1.web.internal  A         A    PASS
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from orbitlab_lab.twin.context import TwinContext
from orbitlab_lab.twin.topology import Namespace


@dataclass(frozen=True)
class CheckResult:
    check: str
    source: str
    target: str
    expected: str
    got: str
    ok: bool


Check = Callable[[], list[CheckResult]]


def render_table(results: list[CheckResult]) -> str:
    """The results as an aligned text table."""
    header = ("CHECK", "FROM", "TO", "EXPECTED", "GOT", "RESULT")
    rows = [
        (r.check, r.source, r.target, r.expected, r.got, "PASS" if r.ok else "FAIL")
        for r in results
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = [header, tuple("-" * w for w in widths), *rows]
    return "\n".join(_aligned(line, widths) for line in lines)


def _aligned(cells: tuple[str, ...], widths: list[int]) -> str:
    return "  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)).rstrip()


@dataclass(frozen=True)
class DigAnswer:
    status: str
    answers: tuple[str, ...]

    def show(self) -> str:
        return ", ".join(self.answers) if self.answers else self.status


def dig(twin: TwinContext, ns: Namespace, *query: str) -> DigAnswer:
    """Ask the namespace's resolver (its private resolv.conf) or ``@server`` in ``query``."""
    argv = ["dig", "+time=2", "+tries=1", *query]
    out = twin.run(ns.name, argv, check=False, timeout=15).stdout
    status = re.search(r"status: (\w+)", out)
    if status is None:
        problem = re.search(r";; (communications error.*|connection timed out.*)", out)
        return DigAnswer(problem.group(1).split(":")[-1].strip() if problem else "no reply", ())
    section = out.split("ANSWER SECTION:", 1)
    answers = ()
    if len(section) == 2:
        lines = section[1].strip().split("\n\n")[0].splitlines()
        answers = tuple(line.split()[-1] for line in lines if line and not line.startswith(";"))
    return DigAnswer(status.group(1), answers)
