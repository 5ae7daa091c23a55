"""The project's documentation as tests read it: the README and one page per reader in docs/.

A test about one promise reads the page that holds it (``page("operating")``); a test about the
documentation as a whole reads :func:`pages`.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
# The pages the README's documentation map names, one per reader (docs/sar/README.md is SAR's).
PAGES = ("contract", "operating", "performance", "developing")


def page(name: str) -> str:
    """The text of ``docs/<name>.md``, or of the README for ``"README"``."""
    path = README if name == "README" else DOCS / f"{name}.md"
    return path.read_text(encoding="utf-8")


def pages() -> dict[Path, str]:
    """The README and every page under docs/ (SAR's README included), by path."""
    found = [README, *sorted(DOCS.rglob("*.md"))]
    return {path: path.read_text(encoding="utf-8") for path in found}
