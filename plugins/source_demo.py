"""demo: an embedded, offline data set of handwriting-like math symbols.

Generates 45x45 grayscale images for the 82 Kaggle class names from stroke
glyphs (vendored Hershey fonts plus hand-written recipes), distorted like
handwriting and rendered like the real data: one-pixel dark strokes on white,
the longer side filling the box, centred. No download, no network, seconds to
build; the same parameters always give byte-identical images. See
``demo_generator`` for how an image is made.
"""

from __future__ import annotations

from typing import Any, Iterator

from pydantic import Field

from mathsym_zoo import hookimpl
from mathsym_zoo.components import BuildContext, Params
from mathsym_zoo.sources import Record



def _gen():
    """The generator (numpy, Pillow), imported on first use so that listing plugins stays light."""
    from . import demo_generator

    return demo_generator


class DemoParams(Params):
    """How much demo data to generate, and how it varies."""

    images_per_class: int = Field(
        100, ge=1, le=20_000,
        description="images generated per class (82 classes); 100 keeps `compare --source demo` in minutes",
    )
    seed: int = Field(0, description="same seed, same images (byte for byte); another seed, other images")
    distortion: float = Field(
        1.0, ge=0, le=3,
        description="handwriting variation: slant, rotation, aspect, elastic bend, tremor (0 = clean font strokes)",
    )
    writers: int = Field(
        20, ge=1, le=10_000,
        description="synthetic writers; each has its own slant and style, and is the record's group id",
    )


class DemoSource:
    """A :class:`mathsym_zoo.sources.Source` over generated images."""

    def __init__(self, params: DemoParams) -> None:
        self.params = params

    def fingerprint(self) -> str:
        p = self.params
        return (f"demo:v{_gen().GENERATOR_VERSION}:n={p.images_per_class}:seed={p.seed}:"
                f"distortion={p.distortion!r}:writers={p.writers}")

    def describe(self) -> dict[str, Any]:
        return {"kind": "demo", "generator_version": _gen().GENERATOR_VERSION, "classes": len(_gen().CLASS_NAMES),
                **self.params.model_dump(mode="json")}

    def records(self) -> Iterator[Record]:
        p, gen = self.params, _gen()
        for label in gen.CLASS_NAMES:
            for i in range(p.images_per_class):
                writer = i % p.writers
                image = gen.generate(label, p.seed, i, writer, p.distortion)
                yield Record(path=f"{label}/{i}.png", label=label, group=f"writer-{writer:04d}", image=image)

    def metadata(self) -> dict[str, Any]:
        p = self.params
        return {
            "name": "mathsym-zoo demo symbols",
            "description": (
                f"Generated handwriting-like 45x45 grayscale images of 82 math symbol classes "
                f"({p.images_per_class} per class, seed {p.seed}, distortion {p.distortion:g}) from Hershey "
                "stroke fonts, distorted per synthetic writer. For trying the tool offline; not real handwriting."
            ),
            "license": "CC0-1.0 (generated images); Hershey font data: free with attribution (NBS, 1967)",
            "version": str(_gen().GENERATOR_VERSION),
            "citation": "A. V. Hershey, Calligraphy for Computers, U.S. Naval Weapons Laboratory, 1967",
            "url": None,
            "date_published": None,
        }


def build_demo(params: DemoParams, context: BuildContext | None = None) -> DemoSource:
    """Source factory: the context is unused (nothing is read from disk)."""
    return DemoSource(params)


@hookimpl
def register_sources(register):
    register(
        "demo",
        summary="Embedded offline generator of handwriting-like symbols, all 82 classes (no download).",
        params=DemoParams,
        factory=build_demo,
    )
