"""The snippets of the README and of every page of ``docs/`` hold as written.

Each ```python block passes ``mypy --strict``, checked as a module of its own. Names a
snippet uses but does not define (``config``, ``broker``, ``handler``...) are declared
first with the types the earlier snippets give them; a snippet that awaits is checked
inside an ``async def``. Each ```yaml block is a config ``fluxabee.Config.from_yaml``
loads. ```bash and ```text blocks are shown, not run: commands and their real output.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import fluxabee

ROOT = Path(__file__).resolve().parent.parent

#: What an undefined name in a snippet stands for (as the docs' own snippets define it).
DECLARED = {
    "config": "fluxabee.Config",
    "engine": "fluxabee.Engine",
    "broker": "fluxabee.EventBroker",
    "consumer": "fluxabee.Consumer",
    "handler": "Callable[[list[fluxabee.Event]], None]",
    "async_broker": "fluxabee.AsyncEventBroker",
    "event": "fluxabee.Event",
}


def pages() -> list[Path]:
    """The README (the landing page) and every page of the documentation site."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def blocks(page: Path, language: str) -> list[str]:
    """Every ```<language> block of a page, in order."""
    text = page.read_text()
    return [m.group(1) for m in re.finditer(rf"```{language}\n(.*?)```", text, re.S)]


def snippets() -> list[tuple[str, str]]:
    """Every ```python block of every page: (a module name saying where, its code)."""
    found = []
    for page in pages():
        where = re.sub(r"\W", "_", str(page.relative_to(ROOT).with_suffix("")))
        found += [(f"{where}_{i:02d}", code) for i, code in enumerate(blocks(page, "python"))]
    return found


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


def test_the_readme_is_a_landing_page_with_the_app_example_first() -> None:
    """Under 300 lines; its first code after the two commands is the App example."""
    readme = ROOT / "README.md"
    assert len(readme.read_text().splitlines()) < 300
    first, *_ = blocks(readme, "python")
    assert "fluxabee.App(" in first and "@app.consumer(" in first
    (commands,) = blocks(readme, "bash")
    assert ".venv/bin/fluxabee demo" in commands and ".venv/bin/python -m pytest" in commands


def test_the_ci_runs_the_readmes_test_command_verbatim() -> None:
    (commands,) = blocks(ROOT / "README.md", "bash")
    test_command = commands.splitlines()[1]
    ci = (ROOT / ".ci" / "run").read_text()
    assert f"# The README's test command, verbatim:\n{test_command}\n" in ci


def test_the_readmes_links_to_the_docs_name_pages_that_exist() -> None:
    """The README links to the published site (PyPI shows it away from the repository):
    each such link names a page of docs/, and a heading of it when it has an anchor."""
    base = "https://fluxabee.github.io/fluxabee/"
    links = re.findall(rf"\]\(({re.escape(base)}[^)\s]*)\)", (ROOT / "README.md").read_text())
    assert len(links) >= 20
    for link in links:
        path, _, anchor = link.removeprefix(base).partition("#")
        page = ROOT / "docs" / (f"{path.strip('/')}.md" if path.strip("/") else "index.md")
        if not page.exists():
            page = ROOT / "docs" / path.strip("/") / "index.md"
        assert page.exists(), link
        headings = re.findall(r"^#+ (.*)$", page.read_text(), re.M)
        slugs = {re.sub(r"[^\w\s-]", "", h.lower()).strip().replace(" ", "-") for h in headings}
        assert not anchor or anchor in slugs, link


def test_the_pages_have_snippets_and_each_parses() -> None:
    found = snippets()
    assert len(found) >= 20
    assert {where.rsplit("_", 1)[0] for where, _ in found} >= {"README", "docs_getting_started"}
    for _, snippet in found:
        ast.parse(module_for(snippet))


def test_every_yaml_snippet_is_a_config_that_loads() -> None:
    found = [(page, code) for page in pages() for code in blocks(page, "yaml")]
    assert len(found) >= 3
    for page, code in found:
        assert fluxabee.Config.from_yaml(code).redis_pools, page


def test_every_public_name_is_on_an_api_page() -> None:
    """A name added to ``fluxabee.__all__`` gets a ``::: fluxabee.NAME`` on a page of
    docs/api/ (the strict build then renders its docstring)."""
    api = "".join(page.read_text() for page in (ROOT / "docs" / "api").glob("*.md"))
    documented = re.findall(r"^::: fluxabee\.(\w+)$", api, re.M)
    assert len(documented) == len(set(documented))
    assert set(documented) - {"testing", "dashboard"} == set(fluxabee.__all__) - {"__version__"}


def test_every_python_snippet_passes_mypy_strict(tmp_path: Path) -> None:
    paths = []
    for where, snippet in snippets():
        path = tmp_path / f"{where}.py"
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
