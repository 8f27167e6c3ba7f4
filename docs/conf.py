"""Sphinx configuration for blockzoo's documentation."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import blockzoo

# docs/_ext holds this site's own extensions (generated tables, re-export links, the gallery's figure scraper).
sys.path.insert(0, str(Path(__file__).parent / "_ext"))

project = "blockzoo"
author = "The blockzoo developers"
copyright = "2026, The blockzoo developers"
release = blockzoo.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.intersphinx",
    "sphinx.ext.doctest",
    "sphinx.ext.viewcode",
    "sphinx_copybutton",
    "blockzoo_docs",
    "sphinx_gallery.gen_gallery",
]

autosummary_generate = True
autosummary_imported_members = True
autodoc_default_options = {"members": True, "show-inheritance": True, "member-order": "bysource"}
autodoc_typehints = "description"
autodoc_typehints_description_target = "documented_params"
autodoc_inherit_docstrings = False
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False

intersphinx_mapping = {
    "python": ("https://docs.python.org/3", None),
    "torch": ("https://docs.pytorch.org/docs/stable", None),
    "matplotlib": ("https://matplotlib.org/stable", None),
}
if os.environ.get("BLOCKZOO_DOCS_OFFLINE"):
    # Machines without network access (CI here) cannot fetch the inventories;
    # cross-references to Python and PyTorch then render as plain text.
    intersphinx_mapping = {}

# --- cross references: every one must resolve (blockzoo_docs resolves re-exported names) ---
nitpicky = True
nitpick_ignore_regex = [
    # Private helpers that public signatures mention; they have no page by design.
    ("py:class", r"blockzoo\.(\w+\.)*_\w+(\.\w+)*"),
    # hypothesis publishes no inventory that we configure; blockzoo.testing returns its strategies.
    ("py:.*", r"hypothesis(\..*)?"),
    # Private type aliases (blockzoo._types.DeviceLike, blockzoo._names.GlobsLike); signatures show their names.
    ("py:class", r"(DeviceLike|GlobsLike)"),
    # Names that annotations write short (``Tensor``, ``nn.Module``) or import only for type
    # checking (``Figure``, ``ExportedProgram``): autodoc renders them as written, not as a path.
    ("py:class", r"(Tensor|Path|Figure|ExportedProgram|nn\.\w+)"),
]
if os.environ.get("BLOCKZOO_DOCS_OFFLINE"):
    nitpick_ignore_regex += [
        # Without the Python and PyTorch inventories (offline, see above) these
        # names have no target; online, intersphinx resolves them.
        ("py:.*", r"(torch|torchvision|matplotlib|collections|typing|os|pathlib|functools|types|enum)(\..*)?"),
        ("py:class", r"(int|float|str|bool|bytes|object|type|list|tuple|dict|set|frozenset|slice|None|Ellipsis)"),
        ("py:(exc|class)", r"(Value|Type|Runtime|Key|Index|Assertion|NotImplemented|FileNotFound|OS)Error"),
    ]

html_theme = "furo"
html_title = f"blockzoo {release}"
templates_path = ["_templates"]
# The generated tables are included into pages, not pages of their own.
exclude_patterns = ["_build", "generated/tables", "course/*.ipynb", "course/*.py", "course/*.zip"]
copybutton_prompt_text = r">>> |\.\.\. |\$ "
copybutton_prompt_is_regexp = True


# --- The course path: an executed gallery, in English and in Spanish (python docs/build.py) ----------------
# examples/*.py run when the docs build and become docs/course/ (generated, not committed). The Spanish
# edition is the same build with -D language=es, translated by Sphinx's gettext machinery: one catalog per
# page in docs/locale/es/LC_MESSAGES/course/ (kept up to date by `python docs/build.py --update-po`). Chosen
# over parallel pages because the code and its output then exist once: only the prose is in the catalog, and
# a script change cannot leave a Spanish copy behind (a changed paragraph falls back to English until the
# catalog catches up). Figure labels follow the language without any code in the scripts: the scraper
# translates the text of each figure, before saving it, with the phrases in figures.po (see _ext/).
sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "course",
    "filename_pattern": r"/\d\d_",  # run every numbered page
    "ignore_pattern": r"/_",
    "within_subsection_order": "FileNameSortKey",
    "image_scrapers": ("course_figures.translating_scraper",),
    "run_stale_examples": True,  # each language's build draws its own figures
    "remove_config_comments": True,
    "show_signature": False,
    "min_reported_time": 1,
}
gettext_compact = False
locale_dirs = ["locale"]
html_sidebars = {
    "**": [
        "sidebar/brand.html",
        "sidebar/language.html",
        "sidebar/search.html",
        "sidebar/scroll-start.html",
        "sidebar/navigation.html",
        "sidebar/scroll-end.html",
    ]
}


def _export_language(app: object, config: object) -> None:
    """Tell the figure scraper the build's language (set by -D language=es, after conf.py has run)."""
    os.environ["BLOCKZOO_DOCS_LANGUAGE"] = config.language or "en"  # type: ignore[attr-defined]


# ------------------------------------------------------------------------------------------------------------


def setup(app: object) -> None:
    app.connect("config-inited", _export_language)  # type: ignore[attr-defined]
