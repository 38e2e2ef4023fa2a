"""tests/conftest.py: a test marked ``shared_data`` skips without ../shared/data, but fails in CI."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

pytest_plugins = ("pytester",)

CONFTEST = Path(__file__).resolve().parent / "conftest.py"


@pytest.fixture
def checkout(pytester):
    """A checkout with the suite's conftest.py and one real-data test, and no ../shared beside it."""
    tests = pytester.path / "repo" / "tests"
    tests.mkdir(parents=True)
    shutil.copyfile(CONFTEST, tests / "conftest.py")
    (tests / "test_real.py").write_text(
        "import pytest\n\n"
        "@pytest.mark.shared_data('crohme_bench.zip')\n"
        "def test_reads_real_data():\n"
        "    pass\n\n"
        "def test_plain():\n"
        "    pass\n")
    assert not (pytester.path / "shared").exists()
    return tests


def test_missing_shared_data_skips_locally(pytester, checkout, monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    result = pytester.runpytest_subprocess(str(checkout), "-rs", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(["*needs *shared/data/crohme_bench.zip*"])


@pytest.mark.parametrize("ci", ["true", "1"])
def test_missing_shared_data_fails_in_ci(pytester, checkout, monkeypatch, ci):
    monkeypatch.setenv("CI", ci)
    result = pytester.runpytest_subprocess(str(checkout), "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*in CI a missing ../shared is an error, not a skip*"])
    assert result.ret != 0


def test_present_shared_data_runs(pytester, checkout, monkeypatch):
    monkeypatch.setenv("CI", "true")
    (pytester.path / "shared" / "data").mkdir(parents=True)
    (pytester.path / "shared" / "data" / "crohme_bench.zip").write_bytes(b"PK\x05\x06" + bytes(18))
    result = pytester.runpytest_subprocess(str(checkout), "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
