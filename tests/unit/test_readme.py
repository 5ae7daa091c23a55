"""The README and the docs/ pages stay true to the template, the Makefile and each other."""

import re
from collections import Counter
from pathlib import Path

from tests.documentation import PAGES, page, pages
from videodb_retry_local.stack.template import PROJECT_ROOT, load_document

OPERATING = page("operating")
# The README is the front door: what it is, the two commands, the diagram, deploying, the map.
README_MOST_LINES = 300


def test_every_parameter_is_documented_with_its_default():
    for name, spec in load_document()["Parameters"].items():
        default = spec.get("Default", "")
        shown = f"`{default}`" if default != "" else "*(empty)*"
        assert f"| `{name}` | {shown} |" in OPERATING, f"docs/operating.md lacks {name} with default {shown}"


def test_every_output_is_documented():
    outputs = OPERATING.split("## Parameters and outputs", 1)[1].split("\n## ", 1)[0]
    for name in load_document()["Outputs"]:
        assert f"`{name}`" in outputs, f"docs/operating.md's Parameters and outputs lacks {name}"


def test_the_two_commands_are_shown():
    text = page("README")
    assert "make demo" in text and "make test" in text
    assert "make test" in (PROJECT_ROOT / ".ci" / "run").read_text()


def test_the_readme_is_short_and_maps_every_page():
    text = page("README")
    assert len(text.splitlines()) <= README_MOST_LINES
    for name in PAGES:
        assert f"](docs/{name}.md)" in text, f"the README's map lacks docs/{name}.md"


def _anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(text: str) -> set[str]:
    outside_code = re.sub(r"^```.*?^```", "", text, flags=re.MULTILINE | re.DOTALL)
    return {_anchor(h) for h in re.findall(r"^#{1,6} (.+)$", outside_code, flags=re.MULTILINE)}


def test_every_link_between_the_pages_lands():
    # Promises moved to one page each, with links instead of copies: a link must not dangle.
    for path, text in pages().items():
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target):
                continue  # a web address
            file, _, anchor = target.partition("#")
            linked = (path.parent / file).resolve() if file else path
            assert linked.exists(), f"{path.name}: {target} links to no file"
            if anchor and linked.suffix == ".md":
                headings = _anchors(linked.read_text(encoding="utf-8"))
                assert anchor in headings, f"{path.name}: no heading for {target}"


def test_no_section_has_two_homes():
    # Every promise keeps one home: no heading, and no paragraph, written on two pages.
    homes: Counter[str] = Counter()
    paragraphs: dict[str, set[Path]] = {}
    for path, text in pages().items():
        if path.parent.name == "sar":
            continue  # SAR's own README repeats the deploy needs on purpose
        homes.update(_anchors(text))
        prose = re.sub(r"^```.*?^```", "", text, flags=re.MULTILINE | re.DOTALL)
        for paragraph in re.split(r"\n\s*\n", prose):
            flat = " ".join(paragraph.split())
            if len(flat) >= 200 and not flat.startswith("|"):
                paragraphs.setdefault(flat, set()).add(path)
    assert [h for h, n in homes.items() if n > 1] == []
    assert [p[:80] for p, where in paragraphs.items() if len(where) > 1] == []
