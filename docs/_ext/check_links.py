"""Check a built HTML site's internal links offline: every href and src must name a file that exists.

Usage: ``python docs/_ext/check_links.py docs/_build/html``. A link to another
page or file of the site must find that file, and its ``#anchor`` (if any) must
be an ``id`` (or an ``<a name>``) on that page. Links with a scheme
(``https:``, ``mailto:``, ...) are external and not checked. Exits with 1 and
lists the broken links when there are any.
"""

from __future__ import annotations

import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

# Attributes that point at another file, by tag.
_LINK_ATTRS = {"a": "href", "link": "href", "img": "src", "script": "src", "iframe": "src", "source": "src"}


class _Page(HTMLParser):
    """The anchors a page defines and the links it makes."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.anchors: set[str] = set()
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        for key in ("id", "name") if tag == "a" else ("id",):
            if values.get(key):
                self.anchors.add(str(values[key]))
        link = values.get(_LINK_ATTRS.get(tag, ""))
        if link:
            self.links.append(link)


def _parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8", errors="replace"))
    return page


def broken_links(root: Path) -> list[str]:
    """``"page: link (why)"`` for every internal link under ``root`` that points nowhere."""
    root = root.resolve()
    pages = {path: _parse(path) for path in sorted(root.rglob("*.html"))}
    broken = []
    for path, page in pages.items():
        for link in page.links:
            parts = urlsplit(link)
            if parts.scheme or parts.netloc:  # external: https:, mailto:, data:, //host/...
                continue
            target = (path.parent / unquote(parts.path)).resolve() if parts.path else path
            if target.is_dir():
                target = target / "index.html"
            where = f"{path.relative_to(root)}: {link}"
            if not target.is_relative_to(root):
                broken.append(f"{where} (outside the site)")
            elif not target.is_file():
                broken.append(f"{where} (no such file)")
            elif parts.fragment and target.suffix == ".html":
                anchors = (pages.get(target) or _parse(target)).anchors
                if unquote(parts.fragment) not in anchors:
                    broken.append(f"{where} (no such anchor)")
    return broken


def main(argv: list[str] | None = None) -> int:
    """Check the site under the one argument; print the broken links and return 1 if there are any."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or not Path(args[0]).is_dir():
        print("usage: check_links.py BUILT_HTML_DIRECTORY", file=sys.stderr)
        return 2
    broken = broken_links(Path(args[0]))
    for line in broken:
        print(line)
    print(f"{len(broken)} broken internal link(s)" if broken else "internal links: all resolve")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
