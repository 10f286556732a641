"""Tests for ssd_tutorial.exercises: right and wrong answers, unknown names, learner errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ssd_tutorial import exercises
from ssd_tutorial.config import SSD300_VOC, SSD512_VOC

PER_LEVEL_512 = [64 * 64 * 4, 32 * 32 * 6, 16 * 16 * 6, 8 * 8 * 6, 4 * 4 * 6, 2 * 2 * 4, 1 * 1 * 4]


def test_hand_worked_counts_match_config():
    assert PER_LEVEL_512 == [16384, 6144, 1536, 384, 96, 16, 4]
    assert sum(PER_LEVEL_512) == 24564 == SSD512_VOC.num_anchors
    assert SSD300_VOC.num_anchors == 8732


def test_registry_lists_notebook_01_exercises():
    names = exercises.exercise_names()
    assert "01_anchors_per_level" in names and "01_total_anchors" in names
    assert names == sorted(names)
    exercise = exercises.get_exercise("01_total_anchors")
    assert isinstance(exercise, exercises.Exercise) and exercise.hint and exercise.solution and exercise.question
    assert exercises.get_exercise("nope") is None
    assert exercises.get_exercise(3) is None


@pytest.mark.parametrize(
    "answer",
    [
        PER_LEVEL_512,
        tuple(PER_LEVEL_512),
        torch.tensor(PER_LEVEL_512),
        torch.tensor(PER_LEVEL_512, dtype=torch.float32),
        np.array(PER_LEVEL_512),
        lambda k, cfg: cfg.anchors_per_level[k],
        lambda level, c: torch.tensor(c.feature_map_sizes[level] ** 2 * 2 * (1 + len(c.aspect_ratios[level]))),
    ],
)
def test_anchors_per_level_right(answer, capsys):
    assert exercises.check("01_anchors_per_level", answer) is True
    out = capsys.readouterr().out
    assert "01_anchors_per_level: correct" in out


def test_anchors_per_level_wrong_value_names_first_mismatch(capsys):
    wrong = list(PER_LEVEL_512)
    wrong[2] = 1537
    assert exercises.check("01_anchors_per_level", wrong) is False
    out = capsys.readouterr().out
    assert "element [2]" in out and "1537" in out and "off by one (too large)" in out
    assert "1536" not in out  # the expected value is only in solution()
    assert "hint(" in out and "solution(" in out


def test_anchors_per_level_wrong_length(capsys):
    assert exercises.check("01_anchors_per_level", PER_LEVEL_512[:6]) is False
    out = capsys.readouterr().out
    assert "7 values" in out and "got 6" in out


@pytest.mark.parametrize(
    "answer, needle",
    [
        ("16384", "list, tuple or 1-D tensor"),
        (24564, "list, tuple or 1-D tensor"),
        (torch.zeros(7, 1), "shape [7, 1]"),
        ([True] * 7, "should be a number"),
        ([None] * 7, "NoneType"),
    ],
)
def test_anchors_per_level_wrong_type_is_a_message(answer, needle, capsys):
    assert exercises.check("01_anchors_per_level", answer) is False
    assert needle in capsys.readouterr().out


def test_anchors_per_level_callable_wrong_names_level(capsys):
    def one_square(k, cfg):  # forgets the second square
        fm = cfg.feature_map_sizes[k]
        return fm * fm * (1 + 2 * len(cfg.aspect_ratios[k]))

    assert exercises.check("01_anchors_per_level", one_square) is False
    out = capsys.readouterr().out
    assert "k=0, cfg=ssd512_voc" in out and "12288" in out and "too small" in out and "16384" not in out


def test_anchors_per_level_function_that_ignores_cfg_fails_on_another_preset(capsys):
    def only_512(k, cfg):  # reads the global preset, not its argument
        return PER_LEVEL_512[k]

    assert exercises.check("01_anchors_per_level", only_512) is False
    out = capsys.readouterr().out
    assert "cfg=ssd300_voc" in out and "does it use every argument" in out


def test_anchors_per_level_one_argument_function_is_told_to_take_cfg(capsys):
    assert exercises.check("01_anchors_per_level", lambda k: PER_LEVEL_512[k]) is False
    assert "two arguments, (k, cfg)" in capsys.readouterr().out


def test_learner_function_that_raises_is_reported_not_raised(capsys):
    def broken(k, cfg):
        return PER_LEVEL_512[:2][k]

    assert exercises.check("01_anchors_per_level", broken) is False
    out = capsys.readouterr().out
    assert "k=2" in out and "IndexError" in out


@pytest.mark.parametrize("answer", [11640, 11640.0, torch.tensor(11640), np.int64(11640),
                                    6 * (38**2 + 19**2 + 10**2 + 5**2 + 3**2 + 1**2)])
def test_total_anchors_right(answer, capsys):
    assert exercises.check("01_total_anchors", answer) is True
    assert "correct" in capsys.readouterr().out


@pytest.mark.parametrize("answer, needle", [(11639, "off by one"), (8732, "SSD300_VOC's own total"),
                                            (24564, "SSD512"), ("11640", "str"), ([11640], "list"), (True, "bool")])
def test_total_anchors_wrong(answer, needle, capsys):
    assert exercises.check("01_total_anchors", answer) is False
    out = capsys.readouterr().out
    assert needle in out and "11640" not in out.replace(repr(answer), ""), out


def test_total_anchors_hand_worked():
    from ssd_tutorial.exercises.nb01 import _all_six_300

    cfg = _all_six_300()
    assert cfg.anchors_per_location == (6,) * 6
    assert cfg.num_anchors == 6 * (1444 + 361 + 100 + 25 + 9 + 1) == 11640


def test_unknown_name_lists_valid_names(capsys):
    assert exercises.check("01_anchors", 3) is False
    out = capsys.readouterr().out
    assert "no exercise called '01_anchors'" in out and "01_anchors_per_level" in out
    exercises.hint("zzz")
    exercises.solution(None)
    out = capsys.readouterr().out
    assert out.count("Valid names") == 2


def test_hint_and_solution_print(capsys):
    assert exercises.hint("01_anchors_per_level") is None
    assert "2 + 2*len(ratios)" in capsys.readouterr().out
    exercises.solution("01_total_anchors")
    assert "11640" in capsys.readouterr().out


def test_solutions_pass_their_own_checks(capsys):
    import ssd_tutorial

    for name in exercises.exercise_names():
        if not name.startswith("01_"):
            continue
        namespace = {"ssd_tutorial": ssd_tutorial}
        lines = exercises.get_exercise(name).solution.splitlines()
        *body, last = [line for line in lines if line.strip()]
        exec("\n".join(body), namespace)
        answer = eval(last.split("#")[0], namespace)
        assert exercises.check(name, answer), capsys.readouterr().out


def test_register_rejects_duplicates_and_custom_exercise_works(capsys):
    with pytest.raises(ValueError, match="already registered"):
        exercises.register("01_total_anchors", question="q", hint="h", solution="s")(lambda a: None)
    name = "99_test_only"
    try:
        @exercises.register(name, question="2 + 2?", hint="count", solution="4")
        def _check(answer):
            return exercises.compare_number(4, answer)

        assert exercises.check(name, 4) and not exercises.check(name, 5)
    finally:
        exercises._REGISTRY.pop(name, None)
    assert name not in exercises.exercise_names()


def test_compare_helpers():
    assert exercises.compare_number(1.0, 1.0 + 1e-9) is None
    assert "too large" in exercises.compare_number(1.0, 1.1) and "1.1" in exercises.compare_number(1.0, 1.1)
    assert "factor of 2" in exercises.compare_number(3.0, 6.0) and "6" in exercises.compare_number(3.0, 6.0)
    assert "wrong sign" in exercises.compare_number(2.0, -2.0)
    assert "dropped" in exercises.compare_number(10, 9, mistakes={9: "dropped the last batch"})
    assert "NaN" in exercises.compare_number(1.0, float("nan"))
    for wrong in (0.0, 0.5, 2.0, 1.5, -1.0, 1e9):
        assert "1.25" not in exercises.compare_number(1.25, wrong)  # never the expected value
    assert exercises.compare_sequence([1, 2], torch.tensor([1.0, 2.0])) is None
    assert "[1]" in exercises.compare_sequence([1, 2], [1, 3])
    assert "dict" in exercises.compare_sequence([1, 2], {"a": 1})
