"""Every input the fuzzers found (``fuzz/crashers/<harness>-*``) replayed through its harness.

The harnesses (``fuzz/fuzz_<harness>.py``) raise on any broken property; here they
run as plain functions, without atheris. ``make fuzz`` writes new crashers to
``fuzz/crashers/``: commit each with its fix.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

FUZZ_DIR = Path(__file__).resolve().parents[2] / "fuzz"
HARNESSES = ("frames", "http", "inflate")
CRASHERS = sorted((FUZZ_DIR / "crashers").glob("*-*"))


def _load(name: str) -> ModuleType:
    module_name = f"fuzz_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    sys.path.insert(0, str(FUZZ_DIR))
    try:
        spec = importlib.util.spec_from_file_location(module_name, FUZZ_DIR / f"{module_name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(FUZZ_DIR))
    return module


@pytest.fixture(scope="module", autouse=True)
def _close_http_loop() -> Iterator[None]:
    yield
    module = sys.modules.get("fuzz_http")
    if module is not None:
        module.close_loop()


def test_every_crasher_names_a_harness() -> None:
    for path in CRASHERS:
        assert path.name.split("-", 1)[0] in HARNESSES, path.name


@pytest.mark.parametrize("path", CRASHERS, ids=[path.name for path in CRASHERS])
def test_crasher(path: Path) -> None:
    _load(path.name.split("-", 1)[0]).test_one_input(path.read_bytes())


@pytest.mark.parametrize("name", HARNESSES)
def test_seed_corpus(name: str) -> None:
    """The seeds pass too (a harness that breaks on valid input would fuzz nothing)."""
    harness = _load(name)
    seeds = sorted((FUZZ_DIR / "corpus" / name).iterdir())
    assert seeds
    for seed in seeds:
        harness.test_one_input(seed.read_bytes())
