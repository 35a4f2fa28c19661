"""MkDocs hooks (mkdocs.yml ``hooks:``) for the API pages rendered from the docstrings.

The docstrings cross-reference in Sphinx's way (``:meth:`consumer```, ``:class:`~fluxabee.X```)
and mkdocstrings renders them as Markdown, which shows the role as text (``:meth:consumer``).
Keep the name as code and drop the role; ``~`` keeps only the last dotted part, as in Sphinx.
"""

from __future__ import annotations

import re
from typing import Any

ROLE = re.compile(
    r":(?:py:)?(?:meth|class|func|attr|mod|exc|data|obj|const):<code>(~?)([^<]*)</code>"
)


def _name(match: re.Match[str]) -> str:
    tilde, name = match.group(1), match.group(2)
    return f"<code>{name.rsplit('.', 1)[-1] if tilde else name}</code>"


def on_page_content(html: str, **_: Any) -> str:
    """Every page's HTML, with the Sphinx roles of the docstrings removed."""
    return ROLE.sub(_name, html)
