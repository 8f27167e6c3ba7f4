"""Sphinx configuration for blockzoo's documentation."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import blockzoo

sys.path.insert(0, str(Path(__file__).parent / "_ext"))  # the gallery's figure-label scraper

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
}
if os.environ.get("BLOCKZOO_DOCS_OFFLINE"):
    # Machines without network access (CI here) cannot fetch the inventories;
    # cross-references to Python and PyTorch then render as plain text.
    intersphinx_mapping = {}

html_theme = "furo"
html_title = f"blockzoo {release}"
templates_path = ["_templates"]
exclude_patterns = ["_build", "course/*.ipynb", "course/*.py", "course/*.zip"]
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


def _rst_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> list[str]:
    """A reStructuredText simple table."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    rule = "  ".join("=" * w for w in widths)
    body = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return [rule, "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip(), rule, *body, rule]


def _write_optimizer_table(app: object) -> None:
    """Generate the optimizer registry table from blockzoo.list_optimizers() at build time."""
    from pathlib import Path

    from blockzoo.optim import get_optimizer_spec, list_optimizers

    rows = []
    for name in list_optimizers():
        spec = get_optimizer_spec(name)
        impl = (
            ", ".join(k for k, has in (("fused", spec.has_fused), ("foreach", spec.has_foreach)) if has) or "for-loop"
        )
        rows.append((f"``{name}``", f"``torch.optim.{spec.cls.__name__}``", impl, spec.description))
    lines = _rst_table(("name", "class", "implementations", "description"), rows)
    out = Path(__file__).parent / "generated" / "optimizer_table.rst"
    out.parent.mkdir(exist_ok=True)
    out.write_text("\n".join(lines) + "\n")


def _write_model_table(app: object) -> None:
    """Generate the model zoo table from the registry at build time."""
    from pathlib import Path

    from blockzoo import list_models, model_info

    rows = []
    for name in list_models():
        info = model_info(name)
        size = "x".join(str(s) for s in info.input_size)
        rows.append((f"``{name}``", info.family, f"{info.num_params / 1e6:.2f}M", size, info.paper))
    lines = _rst_table(("name", "family", "parameters", "input", "paper"), rows)
    out = Path(__file__).parent / "generated" / "model_table.rst"
    out.parent.mkdir(exist_ok=True)
    out.write_text("\n".join(lines) + "\n")


def _write_init_table(app: object) -> None:
    """Generate the activation -> initializer table from blockzoo.init.activation_table() at build time."""
    from pathlib import Path

    from blockzoo.init import activation_table

    rows = [(label, f"``{init}``") for label, init in activation_table()]
    lines = _rst_table(("activation after the layer", "default initializer"), rows)
    out = Path(__file__).parent / "generated" / "init_table.rst"
    out.parent.mkdir(exist_ok=True)
    out.write_text("\n".join(lines) + "\n")


def setup(app: object) -> None:
    app.connect("config-inited", _export_language)  # type: ignore[attr-defined]
    app.connect("builder-inited", _write_init_table)  # type: ignore[attr-defined]
    app.connect("builder-inited", _write_optimizer_table)  # type: ignore[attr-defined]
    app.connect("builder-inited", _write_model_table)  # type: ignore[attr-defined]
