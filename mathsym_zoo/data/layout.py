"""Warnings about a dataset's folder layout that suggest labels were read wrongly.

The ``archive`` source takes each image's parent folder as its label. When an
archive nests images one level deeper (``train/<label>/batch0/x.png``), the
labels silently become ``batch0``, ``batch1``...; these checks catch that from
the label counts alone, and say which ``label_pattern`` fixes it.
"""

from __future__ import annotations

import re

#: Folder names that are splits or batches of a dataset, not classes.
SPLIT_NAME = re.compile(
    r"^(train(ing)?|test(ing)?|val(id(ation)?)?|dev|eval|holdout|"
    r"(batch|part|fold|split|chunk|shard)[\W_]*\d*)$", re.IGNORECASE)
#: One label holding more than this share of the images (with at least MIN_IMAGES) is suspicious.
DOMINANT_SHARE = 0.5
MIN_IMAGES = 50
GRANDPARENT_PATTERN = "([^/]+)/[^/]+/[^/]+$"
FIX = (f"each image's label is its parent folder; if the class is the folder above it, set the source's "
       f"label_pattern = '{GRANDPARENT_PATTERN}' (the grandparent folder), or any regex whose first group is the class")


def layout_warnings(per_class: dict[str, int]) -> list[str]:
    """Warnings for labels that look like split/batch folders or that hold most images."""
    warnings = []
    splits = sorted(label for label in per_class if SPLIT_NAME.match(label))
    if splits:
        shown = ", ".join(map(repr, splits[:5])) + (f" (+{len(splits) - 5} more)" if len(splits) > 5 else "")
        warnings.append(f"labels {shown} look like split or batch folders, not classes: {FIX}")
    total = sum(per_class.values())
    if len(per_class) == 1:
        (label,) = per_class
        warnings.append(f"only one label ({label!r}) was found, so there is nothing to tell apart: {FIX}")
    elif total >= MIN_IMAGES:
        label, count = max(per_class.items(), key=lambda kv: kv[1])
        if count > DOMINANT_SHARE * total:
            warnings.append(f"label {label!r} holds {count:,} of {total:,} images ({count / total:.0%}); "
                            f"if it is a wrapper folder rather than a class: {FIX}")
    return warnings
