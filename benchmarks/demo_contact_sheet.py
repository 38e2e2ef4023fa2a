"""Contact sheet: demo images (left) beside real CROHME images (right), same labels.

    python benchmarks/demo_contact_sheet.py [--zip ../shared/data/crohme_bench.zip] [--out docs/demo_vs_real.png]

Writes a PNG with one row per class: ``--per-side`` demo images, a gap, then as
many real images of the class (fewer when the real set has fewer).
"""

from __future__ import annotations

import argparse
import io
import random
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from mathsym_zoo_plugins import demo_generator as gen

ROOT = Path(__file__).resolve().parent.parent


def real_by_label(zip_path: Path) -> dict[str, list[str]]:
    by: dict[str, list[str]] = {}
    with zipfile.ZipFile(zip_path) as z:
        for name in z.namelist():
            parts = name.split("/")
            if len(parts) == 3 and parts[2].lower().endswith((".jpg", ".png")):
                by.setdefault(parts[1], []).append(name)
    return by


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--zip", default=str(ROOT.parent / "shared/data/crohme_bench.zip"))
    ap.add_argument("--out", default=str(ROOT / "docs/demo_vs_real.png"))
    ap.add_argument("--per-side", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--distortion", type=float, default=1.0)
    ap.add_argument("--labels", default="", help="comma-separated subset (default: all 82)")
    args = ap.parse_args()

    labels = [s for s in args.labels.split(",") if s] or list(gen.CLASS_NAMES)
    zpath = Path(args.zip)
    by = real_by_label(zpath) if zpath.is_file() else {}
    cell, n, label_w, gap = 47, args.per_side, 70, 12
    width = label_w + n * cell + gap + n * cell
    sheet = Image.new("L", (width, len(labels) * cell + 20), 160)
    draw = ImageDraw.Draw(sheet)
    draw.text((label_w, 4), "demo (generated)", fill=0)
    draw.text((label_w + n * cell + gap, 4), "real (CROHME)" if by else "real (zip not found)", fill=0)
    rnd = random.Random(args.seed)
    z = zipfile.ZipFile(zpath) if by else None
    for r, label in enumerate(labels):
        y = 20 + r * cell
        draw.text((2, y + 16), label[:11], fill=0)
        for i in range(n):
            img = gen.generate(label, args.seed, i, writer=i % 20, distortion=args.distortion)
            sheet.paste(Image.fromarray(img), (label_w + i * cell, y))
        if z is not None:
            names = by.get(label, [])
            for i, name in enumerate(rnd.sample(names, min(n, len(names)))):
                real = Image.open(io.BytesIO(z.read(name))).convert("L")
                sheet.paste(real, (label_w + n * cell + gap + i * cell, y))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.out, optimize=True)
    print(f"wrote {args.out} ({len(labels)} classes, {np.prod(sheet.size)} px)")


if __name__ == "__main__":
    main()
