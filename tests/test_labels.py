"""The class-name -> LaTeX table."""

from mathsym_zoo.labels import LATEX, latex_for
from mathsym_zoo_plugins.demo_generator import CLASS_NAMES


def test_every_class_of_the_dataset_has_latex():
    assert set(CLASS_NAMES) <= set(LATEX) and len(CLASS_NAMES) == 82


def test_names_that_are_not_latex_are_translated():
    assert latex_for("alpha") == "\\alpha" and latex_for("Delta") == "\\Delta"
    assert latex_for("ascii_124") == "|" and latex_for("forward_slash") == "/"
    assert latex_for("geq") == "\\geq" and latex_for("sin") == "\\sin" and latex_for("{") == "\\{"
    assert latex_for("lt") == "<" and latex_for("7") == "7"


def test_unknown_labels_fall_back_to_their_name():
    assert latex_for("my_new_symbol") == "my_new_symbol"
