"""The mutation tool's tables stay true to the code: every equivalent names a change it makes today."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def mutate():
    spec = importlib.util.spec_from_file_location("mutate", ROOT / "tools" / "mutate.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["mutate"] = module  # dataclasses look the module up while the class is made
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop("mutate", None)


def test_every_equivalent_names_a_change_the_tool_makes(mutate) -> None:
    """An entry whose source line changed would leave a real mutant unscored, or score nothing."""
    stale = []
    for module, table in mutate.EQUIVALENT.items():
        made = {m.key for m in mutate.mutants(module, (ROOT / module).read_text(encoding="utf-8"))}
        stale += [f"{module}: {key}" for key in table if key not in made]
    assert stale == []


def test_every_equivalent_says_why(mutate) -> None:
    for table in mutate.EQUIVALENT.values():
        assert all(isinstance(why, str) and len(why) > 10 for why in table.values())


def test_every_module_and_test_file_it_names_exists(mutate) -> None:
    for module, tests in mutate.MODULES.items():
        assert (ROOT / module).is_file(), module
        assert tests and all((ROOT / test).is_file() for test in tests), module
    assert set(mutate.EQUIVALENT) <= set(mutate.MODULES)
