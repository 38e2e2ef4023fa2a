"""Suite-wide hooks: tests that read the shared real data in ``../shared/data``.

Mark such a test ``@pytest.mark.shared_data("crohme_bench.zip", ...)`` (names relative to
``../shared/data``). On a machine without those files the test is skipped with the path it
looked for; in CI (``CI`` set, e.g. ``CI=true``) it fails instead, so a broken checkout layout
cannot quietly turn the real-data tests into skips.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def in_ci() -> bool:
    """True under CI (GitHub Actions, GitLab, most others set ``CI=true``)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def missing_shared(names) -> list[Path]:
    return [SHARED_DATA / name for name in names if not (SHARED_DATA / name).exists()]


def pytest_report_header(config):
    state = "found" if SHARED_DATA.is_dir() else "MISSING (real-data tests " + ("fail, CI)" if in_ci() else "skip)")
    return f"shared data: {SHARED_DATA} {state}"


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    marker = item.get_closest_marker("shared_data")
    if marker is None:
        return
    missing = missing_shared(marker.args)
    if not missing:
        return
    message = (f"{item.nodeid} needs {', '.join(str(p) for p in missing)}: the shared real data must sit beside "
               "the checkout (../shared/data)")
    if in_ci():
        pytest.fail(f"{message}; in CI a missing ../shared is an error, not a skip", pytrace=False)
    pytest.skip(message)
