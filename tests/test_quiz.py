"""The notebooks' self-checks (mas.quiz, mas.widgets.Quiz): every notebook has one, every question is well formed,
and the widget gives each choice's own feedback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mas.quiz import QUIZZES, feedback, grade, questions

NOTEBOOKS = sorted(Path(__file__).resolve().parent.parent.glob("notebooks/[0-9][0-9]_*.ipynb"))


def test_every_notebook_ends_with_its_self_check():
    assert sorted(QUIZZES) == [nb.name[:2] for nb in NOTEBOOKS]
    for nb in NOTEBOOKS:
        code = [c for c in json.loads(nb.read_text())["cells"] if c["cell_type"] == "code"]
        assert f'Quiz("{nb.name[:2]}")' in "".join(code[-1]["source"]), nb.name  # the last code cell


@pytest.mark.parametrize("notebook", sorted(QUIZZES))
def test_every_question_has_one_right_choice_and_a_hint_for_each_wrong_one(notebook):
    qs = questions(notebook)
    assert len(qs) >= 3
    for question in qs:
        assert 3 <= len(question.choices) <= 4 and len(set(question.choices)) == len(question.choices)
        assert 0 <= question.right < len(question.choices) and question.why
        assert len(question.hints) == len(question.choices)
        assert all(hint for n, hint in enumerate(question.hints) if n != question.right), question.text
        right = feedback(question, question.right)
        assert right == f"Right: {question.why}"
        wrong = [feedback(question, n) for n in range(len(question.choices)) if n != question.right]
        assert all(line.startswith("Not quite: ") for line in wrong) and len(set(wrong)) == len(wrong)
    # not always the same position: a learner cannot pass by picking the first (or last) choice
    if notebook == "00":
        assert len({question.right for qs_ in QUIZZES.values() for question in qs_}) >= 3


def test_grading_says_each_questions_feedback_and_the_score():
    qs = questions("08")
    text = grade("08", [qs[0].right, None]).splitlines()
    assert text[0] == f"1. Right: {qs[0].why}" and text[1] == "2. Pick an answer first."
    assert text[2] == "3. Pick an answer first." and text[-1] == "1 of 3 right"
    assert "pick one of them" in grade("08", [9])
    with pytest.raises(KeyError, match="no self-check for notebook '99'; there are: 00, 01"):
        questions("99")


def test_the_widget_shows_the_picked_choices_feedback_and_the_score():
    pytest.importorskip("ipywidgets")
    from mas.widgets import Quiz

    quiz = Quiz("03")
    qs = questions("03")
    wrong = next(n for n in range(len(qs[0].choices)) if n != qs[0].right)
    quiz.pickers[0].value, quiz.pickers[1].value = wrong, qs[1].right
    quiz.widget.children[-2].click()  # the Check button, as a click
    assert quiz.feedback[0].value == f"Not quite: {qs[0].hints[wrong]}"
    assert quiz.feedback[1].value.startswith("Right: ") and quiz.feedback[2].value == "Pick an answer first."
    assert quiz.score.value == "<b>1 of 3 right</b>"
    assert "<b>1. The run crashed" in quiz.widget.children[0].value
