"""Class names as LaTeX: the one table the draw page, ``predict`` and reports share.

The keys are the 82 class folder names of the Kaggle "Handwritten math symbols"
data (and of the ``demo`` source). Folder names that are not LaTeX themselves
(``ascii_124`` is ``|``, ``forward_slash`` is ``/``, ``lt`` is ``<``) map to
what a writer would type. Labels from other sources fall back to their name.
"""

from __future__ import annotations

__all__ = ["LATEX", "latex_for"]

_SAME = ("!", "(", ")", "+", ",", "-", "=", "[", "]",
         "0", "1", "2", "3", "4", "5", "6", "7", "8", "9",
         "A", "C", "G", "H", "M", "N", "R", "S", "T", "X",
         "b", "d", "e", "f", "i", "j", "k", "l", "o", "p", "q", "u", "v", "w", "y", "z")
# Names that are LaTeX commands once a backslash is put in front.
_COMMANDS = ("Delta", "alpha", "beta", "cos", "div", "exists", "forall", "gamma", "geq", "in", "infty",
             "int", "lambda", "ldots", "leq", "lim", "log", "mu", "neq", "phi", "pi", "pm", "prime",
             "rightarrow", "sigma", "sin", "sum", "tan", "theta", "times")

#: Class name -> LaTeX source.
LATEX: dict[str, str] = {
    **{name: name for name in _SAME},
    **{name: "\\" + name for name in _COMMANDS},
    "ascii_124": "|",
    "forward_slash": "/",
    "gt": ">",
    "lt": "<",
    "sqrt": "\\sqrt{}",
    "{": "\\{",
    "}": "\\}",
}


def latex_for(label: str) -> str:
    """The LaTeX source of a class; an unknown label is returned as it is."""
    return LATEX.get(label, label)
