"""The documentation holds together: a short README, no dead relative links or anchors, no orphan page."""
from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
DOCS = REPO / "docs"

_FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.MULTILINE | re.DOTALL)
_CODE_SPAN = re.compile(r"`[^`\n]*`")
_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_HEADING = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t#]*$", re.MULTILINE)


def _prose(markdown: str) -> str:
    """The text outside fenced code blocks, where headings and links are real."""
    return _FENCE.sub("", markdown)


def links(markdown: str) -> list[str]:
    """Targets of inline links and images, ignoring code blocks and code spans."""
    return _LINK.findall(_CODE_SPAN.sub("", _prose(markdown)))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(markdown: str) -> set[str]:
    """Every heading anchor of a page; repeated headings get -1, -2, ... as on GitHub."""
    seen: dict[str, int] = {}
    result = set()
    for heading in _HEADING.findall(_prose(markdown)):
        base = slug(heading)
        count = seen.get(base, 0)
        seen[base] = count + 1
        result.add(base if count == 0 else f"{base}-{count}")
    return result


def broken_links(page: Path, root: Path = REPO) -> list[str]:
    """One line per relative link of `page` whose file (inside `root`) or #anchor does not exist."""
    problems = []
    for target in links(page.read_text(encoding="utf-8")):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):     # https:, mailto: ... are not checked offline
            continue
        path_part, _, anchor = target.partition("#")
        resolved = (page.parent / path_part).resolve() if path_part else page
        if not resolved.is_relative_to(root) or not resolved.exists():
            problems.append(f"{page.relative_to(root)}: {target}: no such file in the repository")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved.read_text(encoding="utf-8")):
            problems.append(f"{page.relative_to(root)}: {target}: no heading #{anchor} in {resolved.name}")
    return problems


def documentation_pages() -> list[Path]:
    return [README, REPO / "CONTRIBUTING.md", *sorted(DOCS.glob("*.md"))]


def test_readme_is_at_most_300_lines():
    count = len(README.read_text(encoding="utf-8").splitlines())
    assert count <= 300, f"README.md has {count} lines; move detail to docs/"


def test_every_relative_link_and_anchor_exists():
    assert len(documentation_pages()) > 3
    problems = [problem for page in documentation_pages() for problem in broken_links(page)]
    assert problems == []


def test_every_docs_page_is_linked_from_the_readme():
    linked = {(README.parent / target.partition("#")[0]).resolve() for target in links(README.read_text(encoding="utf-8"))}
    pages = set(DOCS.glob("*.md"))
    assert pages, "docs/ has no pages"
    assert sorted(p.name for p in pages if p.resolve() not in linked) == []


def test_the_readme_figures_are_kept_in_docs():
    assert (DOCS / "source_heatmap_example.png").stat().st_size > 0
    assert "source_heatmap_example.png" in links((DOCS / "sound-source.md").read_text(encoding="utf-8"))


def test_the_checker_reports_a_missing_file_and_a_missing_anchor(tmp_path):
    (tmp_path / "target.md").write_text("# Title\n\n## The cache: `avepipe cache`\n\n## Notes\n\n## Notes\n")
    page = tmp_path / "page.md"
    page.write_text(
        "[ok](target.md#the-cache-avepipe-cache) [ok](target.md#notes-1) [ok](#here) [web](https://example.org/x)\n"
        "# Here\n"
        "[gone](missing.md) [bad anchor](target.md#nowhere) [outside](../elsewhere.md)\n"
        "`[in code](also-missing.md)`\n"
        "```\n[in a block](block-missing.md)\n# not a heading\n```\n"
    )
    assert broken_links(page, root=tmp_path) == [
        "page.md: missing.md: no such file in the repository",
        "page.md: target.md#nowhere: no heading #nowhere in target.md",
        "page.md: ../elsewhere.md: no such file in the repository",
    ]


def test_slugs_follow_github():
    assert slug("Crash safety: why nothing finished is ever lost") == "crash-safety-why-nothing-finished-is-ever-lost"
    assert slug("Importing the authors' released checkpoints") == "importing-the-authors-released-checkpoints"
    assert slug("The bundled AVE metadata: `--annotations ave`, `--splits ave`") == (
        "the-bundled-ave-metadata---annotations-ave---splits-ave")
    assert slug("Equations → code") == "equations--code"
