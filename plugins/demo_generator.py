"""The ``demo`` source's generator: handwriting-like 45x45 math symbols.

Each image is drawn from a stroke glyph (vendored Hershey fonts, see
``demo_glyphs``, or a hand-written stroke recipe below), distorted in vector
space the way handwriting varies (writer slant, rotation, aspect, a smooth
elastic field, per-stroke offsets, pen tremor), then rendered the way the
Kaggle/CROHME images were made: one-pixel black polylines on white, the
symbol's bounding box scaled so its longer side spans the full 45 px and
centred, aspect kept.

Pure numpy + Pillow; every image comes from its own
``np.random.default_rng([seed, class, index])`` so output is byte-identical
for a seed whatever the order or process it is generated in.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Callable

import numpy as np
from mathsym_zoo.ink import render  # one renderer for demo images and drawn strokes

from . import demo_glyphs

#: Bump whenever the generated pixels change for a given set of parameters.
GENERATOR_VERSION = 2
SIZE = 45  # the ink renderer's default box

Strokes = list[np.ndarray]  # each (n, 2) float array, x right, y down


# -- stroke helpers -------------------------------------------------------------


def _glyph(font: str, char: str) -> Strokes:
    return [np.array(s, dtype=np.float64) for s in demo_glyphs.strokes(font, char) if len(s)]


def _word(font: str, text: str, rng: np.random.Generator, d: float) -> Strokes:
    """Letters laid out on a baseline with handwriting-like spacing and bounce."""
    out: Strokes = []
    x = 0.0
    for ch in text:
        w = demo_glyphs.advance(font, ch)
        scale = 1.0 + rng.normal(0, 0.06 * d)
        dy = rng.normal(0, 0.8 * d)
        for s in _glyph(font, ch):
            out.append(np.column_stack([s[:, 0] * scale + x + w / 2, s[:, 1] * scale + dy]))
        x += w * rng.uniform(0.8, 1.05) if font == "scripts" else w * rng.uniform(0.75, 1.15)
    return out


def _arc(cx, cy, rx, ry, a0, a1, n=24) -> np.ndarray:
    t = np.linspace(math.radians(a0), math.radians(a1), n)
    return np.column_stack([cx + rx * np.cos(t), cy + ry * np.sin(t)])


def _pl(*pts) -> np.ndarray:
    return np.array(pts, dtype=np.float64)


def _dot(x, y, r=0.02) -> np.ndarray:
    return _arc(x, y, r, r, 0, 360, 8)


# Hand-written recipes in a unit box (y down). Each takes the image rng so a
# recipe can vary its own proportions (bar length, dot spacing, ...).
def _sqrt(rng):
    bar = rng.uniform(0.6, 1.6)
    h = rng.uniform(0.7, 1.0)
    return [_pl((0, h * 0.55), (0.08, h * 0.47), (0.22, h), (0.38, 0), (0.38 + bar, 0.0))]


def _geq(rng, flip=False):
    top = _pl((0, 0), (1, 0.32), (0, 0.64))
    slope = rng.choice([0.0, 0.25])
    bar = _pl((0, 0.82 + slope), (1, 0.82))
    s = [top, bar]
    return [np.column_stack([1 - a[:, 0], a[:, 1]]) for a in s] if flip else s


def _ldots(rng):
    gap = rng.uniform(0.3, 0.5)
    r = rng.uniform(0.012, 0.03)
    return [_dot(i * gap, rng.normal(0, 0.02), r) for i in range(3)]


def _comma(rng):
    bend = rng.uniform(0.1, 0.35)
    return [_pl((0.5, 0), (0.5 + bend * 0.6, 0.3), (0.5 + bend * 0.5, 0.6), (0.5 - bend, 1.0))]


def _prime(rng):
    return [_pl((rng.uniform(0.4, 0.7), 0), (0, 1))]


def _one(rng):
    s = [_pl((0.5, 0), (0.5, 1))]
    if rng.random() < 0.6:
        s = [_pl((0.5 - rng.uniform(0.15, 0.35), rng.uniform(0.15, 0.3)), (0.5, 0), (0.5, 1))]
    if rng.random() < 0.25:
        s.append(_pl((0.25, 1), (0.75, 1)))
    return s


def _line(rng, dx=0.0):
    mid = rng.normal(0, 0.03)
    return [_pl((0, 0), (0.5 * dx + mid, 0.5), (dx, 1))]


def _hline(rng):
    return [_pl((0, 0), (0.5, rng.normal(0, 0.01)), (1, rng.normal(0, 0.02)))]


def _forall(rng):
    return [_pl((0, 0), (0.5, 1), (1, 0)), _pl((0.22, 0.45), (0.78, 0.45))]


def _exists(rng):
    return [_pl((0, 0), (0.8, 0), (0.8, 1), (0, 1)), _pl((0.1, 0.5), (0.8, 0.5))]


def _in(rng):
    return [_arc(0.5, 0.5, 0.5, 0.5, 90, 270), _pl((0, 0.5), (0.9, 0.5))]


def _in_round(rng):
    a = _arc(0.55, 0.5, 0.5, 0.5, 80, 280)
    return [a, _pl((0.05, 0.5), (0.9, 0.5))]


def _infty(rng):
    t = np.linspace(0, 2 * math.pi, 48)
    return [np.column_stack([np.sin(t), np.sin(t) * np.cos(t) * rng.uniform(0.7, 1.2)])]


def _int(rng):
    t = np.linspace(0, 1, 24)
    x = 0.25 * np.sin((t - 0.5) * math.pi) * 0 + 0.5 + 0.02 * np.sin(t * 6)
    return [np.column_stack([np.concatenate([[0.85, 0.7], x, [0.3, 0.15]]),
                             np.concatenate([[0.02, -0.02], t * 0.96 + 0.02, [1.02, 0.98]])])]


def _div(rng):
    return [_pl((0, 0.5), (1, 0.5)), _dot(0.5, 0.2, 0.05), _dot(0.5, 0.8, 0.05)]


def _pm(rng):
    return [_pl((0, 0.4), (1, 0.4)), _pl((0.5, 0), (0.5, 0.8)), _pl((0, 1), (1, 1))]


def _arrow(rng):
    head = rng.uniform(0.12, 0.25)
    return [_pl((0, 0.5), (1, 0.5)), _pl((1 - head, 0.5 - head * 0.8), (1, 0.5), (1 - head, 0.5 + head * 0.8))]


def _ellipse(rng, ry=1.0):
    a0 = rng.uniform(-120, -60)
    return [_arc(0, 0, rng.uniform(0.6, 0.9), ry, a0, a0 + 360 + rng.uniform(0, 25), 40)]


def _theta(rng):
    rx = rng.uniform(0.45, 0.75)
    a0 = rng.uniform(-120, -60)
    return [_arc(0, 0, rx, 1.0, a0, a0 + 360 + rng.uniform(0, 25), 40), _pl((-rx, 0), (rx, 0))]


def _phi(rng):
    return [_arc(0, 0, 0.6, 0.55, 0, 360, 32), _pl((0.15, -1.0), (-0.15, 1.0))]


def _times(rng):
    return [_pl((0, 0), (1, 1)), _pl((1, 0), (0, 1))]


def _neq(rng):
    return [_pl((0, 0.35), (1, 0.35)), _pl((0, 0.7), (1, 0.7)), _pl((0.7, 0), (0.3, 1.05))]


def _lt(rng, flip=False):
    s = [_pl((1, 0), (0, 0.5), (1, 1))]
    return [np.column_stack([1 - a[:, 0], a[:, 1]]) for a in s] if flip else s


def _delta(rng):
    return [_pl((0.5, 0), (0, 1), (1, 1), (0.5, 0))]


def _bracket(rng, flip=False):
    w = rng.uniform(0.25, 0.45)
    s = [_pl((w, 0), (0, 0), (0, 1), (w, 1))]
    return [np.column_stack([-a[:, 0], a[:, 1]]) for a in s] if flip else s


def _sum(rng):
    return [_pl((0.9, 0.05), (0.85, 0), (0, 0), (0.5, 0.5), (0, 1), (0.9, 1), (0.95, 0.93))]


def _pi(rng):
    return [_pl((0, 0.1), (0.1, 0), (1, 0)), _pl((0.3, 0), (0.25, 1)), _pl((0.7, 0), (0.75, 1))]


def _two(rng):
    top = _arc(0.45, 0.3, 0.42, 0.3, 185, 375 + rng.uniform(0, 20), 20)
    if rng.random() < 0.3:  # a small loop where the diagonal meets the base
        return [np.concatenate([top, _pl((0.1, 0.95), (0.02, 0.88), (0.08, 0.82), (0.18, 1.0), (0.95, 1.0))])]
    return [np.concatenate([top, _pl((0.03, 1.0), (0.95, rng.uniform(0.95, 1.02)))])]


def _three(rng):
    top = _arc(0.45, 0.26, 0.4, 0.26, 200, 450, 20)
    bottom = _arc(0.45, 0.74, 0.45, 0.26, 270, 520, 24)
    return [np.concatenate([top, bottom])]


def _nine(rng):
    loop = _arc(0.45, 0.28, 0.38, 0.28, 0, -360 - rng.uniform(0, 20), 28)
    tail = rng.uniform(-0.15, 0.15)
    return [np.concatenate([loop, _pl((0.83, 0.3), (0.75 + tail / 2, 0.7), (0.65 + tail, 1.0))])]


def _four(rng):
    return [_pl((0.6, 0), (0.0, 0.65), (1.0, 0.65)), _pl((0.72, 0.25), (0.72, 1.0))]


def _seven(rng):
    s = [_pl((0, 0.05), (1, 0), (0.35, 1))]
    if rng.random() < 0.35:
        s.append(_pl((0.4, 0.5), (0.9, 0.5)))
    return s


def _plus(rng):
    # Handwritten plus signs rarely cross in the middle of both strokes.
    cx, cy = rng.uniform(0.3, 0.7), rng.uniform(0.3, 0.7)
    return [_pl((0, cy), (1, cy + rng.normal(0, 0.05))), _pl((cx, 0), (cx + rng.normal(0, 0.05), 1))]


def _b(rng):
    top = rng.uniform(0.0, 0.15)
    bowl = _arc(0.45, 0.72, 0.45, 0.28, 200, -160 + rng.uniform(0, 30), 24)
    return [np.concatenate([_pl((0, top), (0.02, 0.72)), bowl])]


def _zero(rng):
    a0 = rng.uniform(-130, -50)
    return [_arc(0, 0, rng.uniform(0.7, 1.0), 1.0, a0, a0 + 360 + rng.uniform(-20, 15), 40)]


G = "g"  # variant from a font glyph / word
C = "c"  # variant from a recipe

# Each class: list of (weight, kind, payload). ``kind`` G: payload (font, text);
# C: payload is a recipe callable(rng) -> strokes in a unit box.
Variant = tuple[float, str, object]
_F, _S, _GR, _M = "futural", "scripts", "greeks", "mathlow"


def _letters(upper: str | None, lower: str | None, p_lower: float) -> list[Variant]:
    out: list[Variant] = []
    if lower:
        out += [(p_lower * 0.55, G, (_F, lower)), (p_lower * 0.45, G, (_S, lower))]
    if upper:
        out += [((1 - p_lower), G, (_F, upper))]
    return out


def _build_variants() -> dict[str, list[Variant]]:
    v: dict[str, list[Variant]] = {
        "!": [(1, G, (_F, "!"))],
        "(": [(1, G, (_F, "("))],
        ")": [(1, G, (_F, ")"))],
        "+": [(0.5, G, (_F, "+")), (0.5, C, _plus)],
        ",": [(1, C, _comma)],
        "-": [(1, C, _hline)],
        "=": [(1, G, (_F, "="))],
        "[": [(0.5, G, (_F, "[")), (0.5, C, _bracket)],
        "]": [(0.5, G, (_F, "]")), (0.5, C, lambda r: _bracket(r, True))],
        "{": [(1, G, (_F, "{"))],
        "}": [(1, G, (_F, "}"))],
        "1": [(0.3, G, (_F, "1")), (0.15, G, (_S, "1")), (0.55, C, _one)],
        "0": [(0.25, G, (_F, "0")), (0.15, G, (_S, "0")), (0.6, C, _zero)],
        "A": _letters("A", "a", 0.8),
        "C": _letters("C", "c", 0.5),
        "G": _letters("G", "g", 0.8),
        "H": _letters("H", "h", 0.8),
        "M": _letters("M", "m", 0.5),
        "N": _letters("N", "n", 0.7),
        "R": _letters("R", "r", 0.7),
        "S": _letters("S", "s", 0.5),
        "T": _letters("T", "t", 0.6),
        "X": _letters("X", "x", 0.5),
        "Delta": [(0.6, G, (_GR, "D")), (0.4, C, _delta)],
        "alpha": [(1, G, (_GR, "a"))],
        "beta": [(1, G, (_GR, "b"))],
        "gamma": [(1, G, (_GR, "c"))],
        "lambda": [(1, G, (_GR, "k"))],
        "mu": [(1, G, (_GR, "l"))],
        "pi": [(0.6, G, (_GR, "p")), (0.4, C, _pi)],
        "sigma": [(1, G, (_GR, "r"))],
        "phi": [(0.4, G, (_GR, "u")), (0.3, G, (_GR, "U")), (0.3, C, _phi)],
        "theta": [(0.5, G, (_GR, "H")), (0.5, C, _theta)],
        "sum": [(0.4, G, (_GR, "R")), (0.3, G, (_M, ";")), (0.3, C, _sum)],
        "ascii_124": [(1, C, _line)],
        "forward_slash": [(1, C, lambda r: _line(r, -r.uniform(0.3, 0.6)))],
        "prime": [(1, C, _prime)],
        "ldots": [(1, C, _ldots)],
        "sqrt": [(0.25, G, (_M, "b")), (0.75, C, _sqrt)],
        "geq": [(0.3, G, (_M, "'")), (0.7, C, _geq)],
        "leq": [(0.3, G, (_M, "&")), (0.7, C, lambda r: _geq(r, True))],
        "gt": [(0.5, G, (_F, ">")), (0.5, C, lambda r: _lt(r, True))],
        "lt": [(0.5, G, (_F, "<")), (0.5, C, _lt)],
        "neq": [(0.5, G, (_M, "?")), (0.5, C, _neq)],
        "pm": [(0.5, G, (_M, "!")), (0.5, C, _pm)],
        "times": [(0.5, G, (_M, "#")), (0.5, C, _times)],
        "div": [(0.5, G, (_M, "x")), (0.5, C, _div)],
        "rightarrow": [(0.4, G, (_M, "i")), (0.6, C, _arrow)],
        "infty": [(0.5, G, (_M, "_")), (0.5, C, _infty)],
        "int": [(0.4, G, (_M, "p")), (0.3, G, (_M, "q")), (0.3, C, _int)],
        "in": [(0.4, G, (_M, "h")), (0.3, C, _in), (0.3, C, _in_round)],
        "exists": [(0.5, G, (_M, "v")), (0.5, C, _exists)],
        "forall": [(1, C, _forall)],
    }
    for d in "568":
        v[d] = [(0.65, G, (_F, d)), (0.35, G, (_S, d))]
    # Hershey's simplex 2/3/4/7/9 are typographic (flat-topped 3, closed 4); real
    # writers mostly round them, so recipes carry half the weight.
    for d, recipe in (("2", _two), ("3", _three), ("4", _four), ("7", _seven), ("9", _nine)):
        v[d] = [(0.3, G, (_F, d)), (0.2, G, (_S, d)), (0.5, C, recipe)]
    for ch in "dijq":
        v[ch] = [(0.6, G, (_F, ch)), (0.4, G, (_S, ch))]
    # Writers often print these lowercase classes as capitals (true of the real set).
    v["b"] = [(0.35, G, (_F, "b")), (0.15, G, (_S, "b")), (0.35, C, _b), (0.15, G, (_F, "B"))]
    for ch in "efklopuvwyz":
        v[ch] = [(0.45, G, (_F, ch)), (0.35, G, (_S, ch)), (0.2, G, (_F, ch.upper()))]
    for word in ("sin", "cos", "tan", "log", "lim"):
        v[word] = [(0.6, G, (_F, word)), (0.4, G, (_S, word))]
    return v


VARIANTS: dict[str, list[Variant]] = _build_variants()
CLASS_NAMES: tuple[str, ...] = tuple(sorted(VARIANTS))
assert len(CLASS_NAMES) == 82, len(CLASS_NAMES)


# -- distortion -----------------------------------------------------------------


def _resample(s: np.ndarray, step: float) -> np.ndarray:
    """Points along a polyline every ``step`` units (so distortions bend lines)."""
    if len(s) < 2:
        return s
    seg = np.sqrt(((s[1:] - s[:-1]) ** 2).sum(1))
    cum = np.concatenate([[0.0], np.cumsum(seg)])
    total = cum[-1]
    if total <= 0:
        return s[:1]
    n = max(2, int(math.ceil(total / step)) + 1)
    t = np.linspace(0, total, n)
    return np.column_stack([np.interp(t, cum, s[:, 0]), np.interp(t, cum, s[:, 1])])


@lru_cache(maxsize=4096)
def _writer_style(seed: int, writer: int) -> tuple[float, float, float, float]:
    """A writer's habits: slant, aspect, tremor, script preference."""
    rng = np.random.default_rng([seed, 7_919, writer])
    # Real writers draw narrower than fonts (digits especially): mean aspect < 1.
    return (float(rng.normal(0, 0.12)), float(rng.normal(-0.1, 0.08)), float(rng.uniform(0.3, 1.0)),
            float(rng.uniform(0.0, 1.0)))


def _pick_variant(label: str, rng: np.random.Generator, script_pref: float) -> Variant:
    variants = VARIANTS[label]
    w = np.array([v[0] * ((0.4 + 1.2 * script_pref) if v[1] == G and v[2][0] == _S else 1.0)
                  for v in variants])
    return variants[int(rng.choice(len(variants), p=w / w.sum()))]


def make_strokes(label: str, seed: int, index: int, writer: int, distortion: float) -> Strokes:
    """The distorted strokes of one image (unit-free; normalised at render)."""
    d = float(distortion)
    rng = np.random.default_rng([seed, CLASS_NAMES.index(label), index])
    slant_w, aspect_w, tremor_w, script_pref = _writer_style(seed, writer)
    _, kind, payload = _pick_variant(label, rng, script_pref)
    if kind == G:
        font, text = payload
        strokes = _word(font, text, rng, d) if len(text) > 1 else _glyph(font, text)
    else:
        strokes = [np.asarray(s, dtype=np.float64) for s in payload(rng)]
    pts = np.concatenate(strokes)
    lo, hi = pts.min(0), pts.max(0)
    size = float(max(hi - lo)) or 1.0
    strokes = [(s - (lo + hi) / 2) / size for s in strokes]  # long side 1, centred

    # Affine: writer slant + own slant, rotation, aspect.
    slant = (slant_w + rng.normal(0, 0.1)) * d
    rot = rng.normal(0, math.radians(5)) * d
    asp = math.exp((aspect_w + rng.normal(0, 0.1)) * d)
    c, s_ = math.cos(rot), math.sin(rot)
    A = np.array([[c, -s_], [s_, c]]) @ np.array([[asp, -slant], [0, 1 / asp]])

    # Smooth elastic field: a few random low-frequency waves.
    k = rng.normal(0, 2.5, size=(3, 2))
    ph = rng.uniform(0, 2 * math.pi, size=(3, 2))
    amp = rng.normal(0, 0.025, size=(3, 2)) * d

    out: Strokes = []
    for st in strokes:
        st = _resample(st, 0.02)
        off = rng.normal(0, 0.015 * d, size=2)
        phase = st @ k.T  # (n, 3)
        disp = np.stack([(amp[:, 0] * np.sin(phase + ph[:, 0])).sum(1),
                         (amp[:, 1] * np.sin(phase + ph[:, 1])).sum(1)], 1)
        # Pen tremor: smoothed random walk, small.
        if len(st) > 3:
            walk = np.cumsum(rng.normal(0, 0.002 * tremor_w * d, size=st.shape), 0)
            walk -= np.linspace(walk[0], walk[-1], len(st))
            disp += walk
        out.append((st + disp + off) @ A.T)

    if rng.random() < 0.04 * d:  # a stray dot or tiny tick somewhere inside the box
        pts = np.concatenate(out)
        lo, hi = pts.min(0), pts.max(0)
        p = lo + rng.uniform(0.1, 0.9, size=2) * (hi - lo)
        out.append(np.array([p, p + rng.normal(0, 0.01, size=2)]))
    return out


def generate(label: str, seed: int, index: int, writer: int, distortion: float = 1.0) -> np.ndarray:
    """One 45x45 uint8 image of ``label``."""
    return render(make_strokes(label, seed, index, writer, distortion))


Recipe = Callable[[np.random.Generator], Strokes]
