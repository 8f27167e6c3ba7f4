"""The course gallery's image scraper: figure labels in the language of the build.

The scripts in ``examples/`` label their figures in English and know nothing
about languages. Before sphinx-gallery saves a figure, this scraper replaces
every phrase of ``locale/<language>/LC_MESSAGES/figures.po`` found in the
figure's texts (titles, axis labels, legends), as whole words, by its
translation, the longest phrase first: ``"adam (val acc 97.8%)"`` becomes
``"adam (exact. val. 97.8%)"``. ``conf.py`` exports the build's language
as ``BLOCKZOO_DOCS_LANGUAGE``.
"""

from __future__ import annotations

import functools
import os
import re
from pathlib import Path
from typing import Any

LOCALE = Path(__file__).resolve().parents[1] / "locale"


@functools.cache
def phrases(language: str) -> tuple[tuple[str, str], ...]:
    """The (English, translated) pairs of ``figures.po`` for ``language``, longest first."""
    path = LOCALE / language / "LC_MESSAGES" / "figures.po"
    if not path.exists():
        return ()
    from babel.messages.pofile import read_po

    with path.open("rb") as f:
        catalog = read_po(f)
    pairs = [(m.id, m.string) for m in catalog if m.id and m.string and not m.fuzzy]
    return tuple(sorted(pairs, key=lambda pair: -len(pair[0])))


def translate(text: str, language: str) -> str:
    """``text`` with every known phrase, as whole words, translated (longest phrase first)."""
    pairs = phrases(language)
    if not pairs:
        return text
    pattern = "|".join(rf"(?<!\w){re.escape(english)}(?!\w)" for english, _ in pairs)
    translations = dict(pairs)
    return re.sub(pattern, lambda match: translations[match.group(0)], text)


def translating_scraper(block: Any, block_vars: Any, gallery_conf: Any, **kwargs: Any) -> str:
    """sphinx-gallery's matplotlib scraper, after translating the figures' texts.

    It also shows the figures that a library returns without pyplot (``History.plot()`` builds a bare
    ``Figure``, which pyplot, and so sphinx-gallery's own scraper, never sees): a ``Figure`` held by one of
    the example's variables, the first time it is seen.
    """
    from pathlib import PurePosixPath

    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure
    from matplotlib.text import Text
    from sphinx_gallery.scrapers import figure_rst, matplotlib_scraper

    pyplot_figures = [plt.figure(number) for number in plt.get_fignums()]
    loose = [
        value
        for value in block_vars["example_globals"].values()
        if isinstance(value, Figure) and value not in pyplot_figures and not getattr(value, "_course_shown", False)
    ]
    language = os.environ.get("BLOCKZOO_DOCS_LANGUAGE", "en")
    if language != "en":
        for figure in [*pyplot_figures, *loose]:
            for artist in figure.findobj(Text):
                artist.set_text(translate(artist.get_text(), language))
    for figure in pyplot_figures:
        figure._course_shown = True  # type: ignore[attr-defined]  # still held by a variable once pyplot closes it
    rst = str(matplotlib_scraper(block, block_vars, gallery_conf, **kwargs))
    for figure in loose:
        path = PurePosixPath(next(block_vars["image_path_iterator"]))
        figure.savefig(path)
        figure._course_shown = True  # type: ignore[attr-defined]
        rst += figure_rst([path], gallery_conf["src_dir"])
    return rst
