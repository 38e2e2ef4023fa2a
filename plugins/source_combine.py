"""Source ``combine``: several [sources] entries trained as one dataset.

Each part is ingested into its own cache exactly as when used alone (so it is
built once and reused), then the parts' decoded images are concatenated: classes
are aligned by name (the union, sorted), member paths become ``<part>/<path>`` and
group ids ``<part>:<group>``, so groups of different sources never merge. The
ingest report says how many images and classes each part gave, and the split
notes which parts fed each side.
"""

from __future__ import annotations

import sys
from typing import Any, Iterator

from pydantic import Field, field_validator

from mathsym_zoo import hookimpl
from mathsym_zoo.components import BuildContext, Params
from mathsym_zoo.errors import ConfigError
from mathsym_zoo.registry import fingerprint
from mathsym_zoo.sources import Record


class CombineParams(Params):
    sources: list[str] = Field(default_factory=list, description="names of [sources] entries to train on together")

    @field_validator("sources")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        twice = sorted({v for v in value if value.count(v) > 1})
        if twice:
            raise ValueError(f"lists {', '.join(map(repr, twice))} more than once; list each source once")
        return value


class CombinedSource:
    """The concatenation of other sources' decoded caches."""

    kind = "combine"
    preprocessed = True  # the parts' caches already went through the job's offline steps

    def __init__(self, parts: list[tuple[str, Any]], progress: bool = False) -> None:
        self.parts = parts  # (entry name, Job reading it)
        self.progress = progress
        self._datasets: dict[str, Any] | None = None

    def datasets(self) -> dict[str, Any]:
        """Each part's Dataset, ingested on first use."""
        if self._datasets is None:
            from mathsym_zoo.data.cache import load_dataset

            self._datasets = {name: load_dataset(job, progress=self.progress) for name, job in self.parts}
        return self._datasets

    def check(self) -> None:
        """Each part's own cheap checks (files present...), without ingesting anything."""
        for _, job in self.parts:
            job.build_source().check()

    def fingerprint(self) -> str:
        return "combine:" + fingerprint({name: ds.key for name, ds in self.datasets().items()})

    def describe(self) -> dict[str, Any]:
        parts = [{"name": name, "prefix": f"{name}/", "key": ds.key, "source": ds.source}
                 for name, ds in self.datasets().items()]
        return {"kind": self.kind, "parts": parts}

    def size_hint(self) -> int:
        return sum(len(ds) for ds in self.datasets().values())

    def records(self) -> Iterator[Record]:
        for name, ds in self.datasets().items():
            for i in range(len(ds)):
                group = str(ds.groups[i])
                yield Record(f"{name}/{ds.paths[i]}", ds.class_names[int(ds.labels[i])],
                             f"{name}:{group}" if group else None, image=ds.images[i])

    def notes(self) -> list[str]:
        parts = ", ".join(f"{name} {len(ds):,} images in {ds.num_classes} classes (cache {ds.path.name})"
                          for name, ds in self.datasets().items())
        return [f"combined from {parts}"]

    def metadata(self) -> dict[str, Any] | None:
        return None


def build_combine(params: CombineParams, context: BuildContext) -> CombinedSource:
    if len(params.sources) < 2:
        raise ConfigError("combine source: `sources` must list at least two [sources] entries, "
                          'e.g. sources = ["crohme", "demo"]')
    if context.source_job is None:
        raise ConfigError("combine source: it reads other [sources] entries, so it needs a registry job")
    parts = [(name, context.source_job(name)) for name in params.sources]
    return CombinedSource(parts, progress=sys.stderr.isatty())


@hookimpl
def register_sources(register):
    register("combine", summary="Several registry sources as one dataset: classes aligned by name, groups kept "
                                "per source, each part's cache reused.",
             params=CombineParams, factory=build_combine)
