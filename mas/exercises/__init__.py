"""Checks for the notebooks' "Your turn" exercises: run the learner's code, say what is wrong.

    from mas.exercises import check
    check("02.1", SummarizerAgent)        # ✓ and what was checked, or a friendly hint
    solution("02.1")                      # the reference answer, when you are stuck

A check runs the learner's code against the offline model and raises `NotYet` with a specific
hint on the first thing that is not right (so a failing check stops a notebook run like any
error), or prints what passed. Each exercise's reference answer sits in its notebook in a
collapsed cell; `solution(name)` says where, so it is one step away but not in the way.

The checks live in one module per group of notebooks (`foundations`: 01-03, `contracts`: 04,
`production`: 05-07, `scaling`: 08, `teams`: 09, `playground`: 10, `grounding`: 11,
`evaluation`: 12, `tutorial`: 13), each with its own `CHECKS`; `core` has what they share.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from mas.exercises import (
    contracts,
    evaluation,
    foundations,
    grounding,
    playground,
    production,
    scaling,
    teams,
    tutorial,
)
from mas.exercises.core import NotYet

__all__ = ["CHECKS", "NotYet", "check", "solution"]

CHECKS: dict[str, Callable[..., str]] = dict(
    sorted({**foundations.CHECKS, **contracts.CHECKS, **production.CHECKS, **scaling.CHECKS, **teams.CHECKS,
            **playground.CHECKS, **grounding.CHECKS, **evaluation.CHECKS, **tutorial.CHECKS}.items()))


def check(exercise: str, *args: Any, **kwargs: Any) -> None:
    """Run the check for `exercise` ("NN.k") on your code; prints ✓ or raises NotYet with a hint."""
    if exercise not in CHECKS:
        raise KeyError(f"no check named {exercise!r}; known: {', '.join(CHECKS)}")
    print(f"✓ {exercise}: {CHECKS[exercise](*args, **kwargs)}")


def solution(exercise: str) -> str:
    """Where the reference answer is: it does not show it, it names the collapsed "Answer" cell under the
    exercise, in its notebook (the course's notebooks/ folder, next to the module in a checkout).

    >>> answer = solution("05.2")
    >>> "notebooks/05_failure_handling.ipynb" in answer and "'# Answer 2'" in answer
    True
    """
    if exercise not in CHECKS:
        raise KeyError(f"no exercise named {exercise!r}; known: {', '.join(CHECKS)}")
    number, k = exercise.split(".")
    found = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob(f"{number}_*.ipynb"))
    where = f"notebooks/{found[0].name}" if found else f"notebooks/{number}_*.ipynb (in the course's repository)"
    return (f"The reference answer to {exercise} is not shown here: it is in {where}, in the collapsed cell "
            f"'# Answer {int(k)}' under 'Your turn' (click the ··· to expand it); it ends with check({exercise!r}, ...).")
