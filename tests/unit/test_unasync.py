"""The sync shell's generator: code is rewritten, prose is not, and no rule is dead."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("unasync", ROOT / "scripts" / "unasync.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["unasync"] = module
    spec.loader.exec_module(module)
    return module


def test_code_is_rewritten_but_strings_and_comments_keep_their_keywords() -> None:
    unasync = load()
    source = (
        "async def run(self) -> None:\n"
        '    """Handlers may be ``async def`` under asyncio; see AsyncEngine."""\n'
        "    await self.aclose()  # await here, async with there\n"
        "    async with AsyncBackend.new_lock():\n"
        '        return "await me"\n'
    )
    out = unasync.convert(source)
    assert out.startswith("def run(self) -> None:\n")
    assert "Handlers may be ``async def`` under asyncio; see Engine." in out
    assert "    self.close()  # await here, async with there\n" in out
    assert "    with SyncBackend.new_lock():\n" in out
    assert '"await me"' in out


def test_a_rule_that_matched_nothing_fails_the_generator(monkeypatch: pytest.MonkeyPatch) -> None:
    unasync = load()
    monkeypatch.setattr(unasync, "NAME_SUBS", [*unasync.NAME_SUBS, (r"\bNoSuchName\b", "X")])
    with pytest.raises(SystemExit, match="NoSuchName"):
        unasync.expected()
