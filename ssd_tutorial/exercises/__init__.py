"""Auto-checked exercises for the notebooks: ``check(name, answer)``, ``hint(name)``, ``solution(name)``.

Each exercise is an :class:`Exercise` in a registry keyed by name (``"01_anchors_per_level"``: the
notebook number, then what is asked). Each notebook registers its exercises with :func:`register` in a module of its own
(``exercises/nb01.py`` …), loaded when this package is imported;
the checker returns ``None`` for a right answer and a teaching message otherwise, so ``check`` can
print it. Printing is the purpose of this module, unlike the rest of the package.

Introduced in: 01_constants.ipynb
"""

from __future__ import annotations

import functools
import inspect
import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "Exercise",
    "register",
    "get_exercise",
    "exercise_names",
    "check",
    "hint",
    "solution",
    "compare_number",
    "compare_sequence",
    "compare_function",
    "describe_miss",
]

Checker = Callable[[Any], "str | None"]


@dataclass(frozen=True)
class Exercise:
    """One exercise: what is asked, how an answer is checked, a hint and a worked solution.

    ``checker(answer)`` returns ``None`` when the answer is right, else a message for the learner.
    """

    name: str
    question: str
    checker: Checker
    hint: str
    solution: str


_REGISTRY: dict[str, Exercise] = {}


def register(name: str, *, question: str, hint: str, solution: str) -> Callable[[Checker], Checker]:
    """Decorator that registers ``checker`` as exercise ``name``; names must be unique.

    Introduced in: 01_constants.ipynb
    """

    def decorator(checker: Checker) -> Checker:
        if name in _REGISTRY:
            raise ValueError(f"exercise {name!r} is already registered")
        _REGISTRY[name] = Exercise(name, question, checker, hint.strip(), solution.strip())
        return checker

    return decorator


def exercise_names() -> list[str]:
    """All registered exercise names, sorted (so notebook order).

    Introduced in: 01_constants.ipynb
    """
    return sorted(_REGISTRY)


def get_exercise(name: str) -> Exercise | None:
    """The :class:`Exercise` called ``name``, or ``None`` if there is none.

    Introduced in: 01_constants.ipynb
    """
    return _REGISTRY.get(name) if isinstance(name, str) else None


def _lookup(name: Any) -> Exercise | None:
    exercise = get_exercise(name)
    if exercise is None:
        print(f"❌ There is no exercise called {name!r}. Valid names: {', '.join(exercise_names())}")
    return exercise


def check(name: str, answer: Any) -> bool:
    """Check ``answer`` for exercise ``name``; print a pass line or what is wrong; return whether it passed.

    Never raises at the learner: an unknown name, a wrong type or an answer (function) that raises
    becomes a message. The one exception is NotImplementedError (the placeholder that ``make student``
    puts where a solution was), raised by the answer or by the learner's function even where the checker
    catches it: it is raised again, without the checker's frames, so "Run All" stops at the first exercise
    still to write.

    Introduced in: 01_constants.ipynb
    """
    exercise = _lookup(name)
    if exercise is None:
        return False
    given, unwritten = _watch_unwritten(answer)
    try:
        problem = exercise.checker(given)
    except NotImplementedError as error:
        unwritten.append(error)
    except Exception as error:  # the learner's function raised, or an answer we could not read
        problem = f"checking your answer raised {type(error).__name__}: {error}"
    if unwritten:  # a student notebook's placeholder (make student): stop "Run All" here, without our frames
        raise NotImplementedError(str(unwritten[0]) or f"{name}: write your answer first") from None
    if problem is None:
        print(f"✅ {name}: correct!")
        return True
    print(f"❌ {name}: not yet. {problem}\n"
          f"   Stuck? exercises.hint({name!r}) gives a hint; exercises.solution({name!r}) shows the answer.")
    return False


def _watch_unwritten(answer: Any) -> tuple[Any, list[NotImplementedError]]:
    """``answer`` (a learner's function wrapped so that a NotImplementedError it raises is recorded even when the
    checker catches it) and the list that records it."""
    seen: list[NotImplementedError] = []
    if not (inspect.isfunction(answer) or inspect.ismethod(answer)):
        return answer, seen

    @functools.wraps(answer)
    def watched(*args: Any, **kwargs: Any) -> Any:
        try:
            return answer(*args, **kwargs)
        except NotImplementedError as error:
            seen.append(error)
            raise

    return watched, seen


def hint(name: str) -> None:
    """Print the hint of exercise ``name``.

    Introduced in: 01_constants.ipynb
    """
    exercise = _lookup(name)
    if exercise is not None:
        print(f"💡 {name}: {exercise.hint}")


def solution(name: str) -> None:
    """Print the worked solution of exercise ``name``.

    Introduced in: 01_constants.ipynb
    """
    exercise = _lookup(name)
    if exercise is not None:
        print(f"📖 {name}:\n{exercise.solution}")


def _describe(value: Any) -> str:
    shape = getattr(value, "shape", None)
    if shape is not None:
        return f"{type(value).__name__} of shape {list(shape)}"
    return type(value).__name__


def _as_number(value: Any) -> float | None:
    """A real number from an int/float/0-d tensor or array; None for anything else (bools included)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, numbers.Real):
        return float(value)
    if getattr(value, "shape", None) is not None and tuple(value.shape) == () and hasattr(value, "item"):
        item = value.item()
        return None if isinstance(item, bool) else float(item)
    return None


def describe_miss(expected: float, got: float, *, rel_tol: float = 1e-6) -> str:
    """What kind of mistake ``got`` is, next to the right value ``expected``, **without** saying that value: too
    large / too small, by a simple factor, off by one, the sign flipped. The value itself is only in ``solution()``.

    Introduced in: 01_constants.ipynb
    """
    if math.isclose(got, -expected, rel_tol=rel_tol, abs_tol=rel_tol) and expected != 0:
        return "has the right size but the wrong sign"
    direction = "too large" if got > expected else "too small"
    if expected != 0 and got != 0 and (got > 0) == (expected > 0):
        ratio = got / expected if abs(got) > abs(expected) else expected / got
        for factor in (2, 3, 4, 6, 8, 10, 16, 100):
            if math.isclose(abs(ratio), factor, rel_tol=1e-3):
                return f"is {direction} by a factor of {factor}"
    if float(expected).is_integer() and float(got).is_integer() and abs(got - expected) == 1:
        return f"is off by one ({direction})"
    return f"is {direction}"


def compare_number(expected: float, answer: Any, *, what: str = "the answer", rel_tol: float = 1e-6,
                   mistakes: Mapping[float, str] | None = None) -> str | None:  # fmt: skip
    """``None`` if ``answer`` is a number equal to ``expected`` (relative tolerance), else a message that names the
    kind of mistake (see :func:`describe_miss`; ``mistakes`` maps known wrong values to what they mean) and never
    the expected value.

    Introduced in: 01_constants.ipynb
    """
    got = _as_number(answer)
    if got is None:
        return f"{what} should be a number (int, float or 0-d tensor), got {_describe(answer)}: {answer!r}"
    if math.isnan(got):
        return f"{what} is NaN"
    if math.isclose(got, expected, rel_tol=rel_tol, abs_tol=rel_tol):
        return None
    for value, meaning in (mistakes or {}).items():
        if math.isclose(got, value, rel_tol=rel_tol, abs_tol=rel_tol):
            return f"{what} ({got:g}) {meaning}"
    return f"{what} ({got:g}) {describe_miss(expected, got, rel_tol=rel_tol)}"


def compare_sequence(expected: Sequence[float], answer: Any, *, what: str = "the answer",
                     rel_tol: float = 1e-6, item: str = "level") -> str | None:  # fmt: skip
    """``None`` if ``answer`` (list, tuple, 1-D tensor/array) equals ``expected`` element-wise, else a message
    naming the expected length or the first wrong element and the kind of mistake (never the expected values).

    Introduced in: 01_constants.ipynb
    """
    if isinstance(answer, (str, bytes, dict)) or not hasattr(answer, "__len__"):
        return f"{what} should be a list, tuple or 1-D tensor of {len(expected)} numbers, got {_describe(answer)}"
    shape = getattr(answer, "shape", None)
    if shape is not None and len(shape) != 1:
        return f"{what} should be 1-D with {len(expected)} values, got {_describe(answer)}"
    values = answer.tolist() if hasattr(answer, "tolist") else list(answer)
    if len(values) != len(expected):
        return f"{what} should have {len(expected)} values (one per {item}), got {len(values)}"
    for index, (want, got) in enumerate(zip(expected, values)):
        problem = compare_number(want, got, what=f"element [{index}]", rel_tol=rel_tol)
        if problem is not None:
            return f"{what}: {problem}"
    return None


def compare_function(answer: Any, cases: Sequence[tuple[Mapping[str, Any], Any]], *, what: str = "your function",
                     compare: Callable[[Any, Any, str], str | None] | None = None) -> str | None:  # fmt: skip
    """Call ``answer(**kwargs)`` for every ``(kwargs, expected)`` of ``cases`` — every input the question covers
    (other presets, other levels …) — and report the first input it gets wrong, by name. When it was right on an
    earlier input, the message asks whether it ignores an argument (a function that reads a global instead of its
    ``cfg`` argument is right for one preset only). ``compare(expected, got, what)`` defaults to
    :func:`compare_number`.

    Introduced in: 01_constants.ipynb
    """
    if not callable(answer):
        return f"the answer should be a function, got {_describe(answer)}"
    compare = compare or (lambda expected, got, label: compare_number(expected, got, what=label))
    right_on: list[str] = []
    for kwargs, expected in cases:
        call = ", ".join(f"{key}={_short(value)}" for key, value in kwargs.items())
        try:
            got = answer(**kwargs)
        except NotImplementedError:
            raise
        except Exception as error:
            return f"calling {what} with {call} raised {type(error).__name__}: {error}"
        problem = compare(expected, got, f"{what} at {call}")
        if problem is not None:
            if right_on:
                problem += (f" — it was right at {right_on[0]}: does it use every argument it is given "
                            "(not a global such as cfg from an earlier cell)?")
            return problem
        right_on.append(call)
    return None


def _short(value: Any) -> str:
    """A readable name for an argument in a message: a config by its name, small values as they are."""
    name = getattr(value, "name", None)
    if isinstance(name, str) and hasattr(value, "feature_map_sizes"):
        return name
    text = repr(value)
    return text if len(text) <= 40 else _describe(value)


def _load_notebook_exercises() -> None:
    """Import every ``nbNN*.py`` module of this package so their exercises register themselves."""
    import importlib
    import pkgutil

    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if info.name.startswith("nb"):
            importlib.import_module(f"{__name__}.{info.name}")


_load_notebook_exercises()
