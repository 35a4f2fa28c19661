"""Ready for PyPI: a license, metadata, and a README whose links work on PyPI's page.

``scripts/check_dist`` (run by ``.ci/run``) builds the sdist and the wheel and runs
``twine check --strict`` on them; these are the checks that need no build."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_readme_has_no_relative_link() -> None:
    """PyPI shows the README away from the repository: a relative link there is broken
    (an in-page anchor is fine)."""
    readme = (ROOT / "README.md").read_text()
    links = re.findall(r"\]\(([^)\s]+)\)|(?:src|href)=[\"']([^\"']+)", readme)
    targets = [a or b for a, b in links]
    assert targets, "no link found: the pattern is wrong"
    relative = [t for t in targets if not re.match(r"(https?://|#|mailto:)", t)]
    assert not relative, relative


def test_the_license_is_mit_in_the_repository_and_the_metadata() -> None:
    license_text = (ROOT / "LICENSE").read_text()
    assert license_text.startswith("MIT License\n\nCopyright (c) 2026 fluxabee contributors\n")
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert re.search(r'^license = "MIT"$', pyproject, re.M)
    assert re.search(r'^license-files = \["LICENSE"\]$', pyproject, re.M)
    for needed in ("classifiers = [", "keywords = [", "[project.urls]",
                   'Source = "https://github.com/fluxabee/fluxabee"'):  # fmt: skip
        assert needed in pyproject, needed


def test_ci_builds_and_checks_the_distributions() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    assert "scripts/check_dist" in ci
    script = (ROOT / "scripts" / "check_dist").read_text()
    assert "-m build" in script and "twine check --strict" in script
