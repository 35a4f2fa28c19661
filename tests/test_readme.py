"""The README's Python snippets pass ``mypy --strict`` as written.

Each ```python block is checked as a module of its own. Names a snippet uses but does not
define (``config``, ``broker``, ``handler``...) are declared first with the types the
earlier snippets give them; a snippet that awaits is checked inside an ``async def``.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: What an undefined name in a snippet stands for (as the README's own snippets define it).
DECLARED = {
    "config": "fluxabee.Config",
    "engine": "fluxabee.Engine",
    "broker": "fluxabee.EventBroker",
    "consumer": "fluxabee.Consumer",
    "handler": "Callable[[list[fluxabee.Event]], None]",
    "async_broker": "fluxabee.AsyncEventBroker",
    "event": "fluxabee.Event",
}


def snippets() -> list[str]:
    """Every ```python block of the README, in order."""
    text = (ROOT / "README.md").read_text()
    return [m.group(1) for m in re.finditer(r"```python\n(.*?)```", text, re.S)]


def defined(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
    return names


def module_for(snippet: str) -> str:
    is_async = bool(re.search(r"\bawait\b|\basync with\b|\basync for\b", snippet))
    body = textwrap.indent(snippet, "    ") if is_async else snippet
    if is_async:
        body = "async def _snippet() -> None:\n" + body
    tree = ast.parse(body)
    used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    prelude = ["from collections.abc import Callable", "import fluxabee"]
    prelude += [
        f"{name}: {kind}" for name, kind in DECLARED.items() if name in used - defined(tree)
    ]
    return "\n".join(prelude) + "\n" + body


def test_the_readme_has_snippets_and_each_parses() -> None:
    found = snippets()
    assert len(found) >= 5
    for snippet in found:
        ast.parse(module_for(snippet))


def test_every_readme_snippet_passes_mypy_strict(tmp_path: Path) -> None:
    paths = []
    for index, snippet in enumerate(snippets()):
        path = tmp_path / f"snippet_{index:02d}.py"
        path.write_text(module_for(snippet))
        paths.append(str(path))
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", "--follow-imports=silent",
         "--python-version", "3.10", *paths],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
