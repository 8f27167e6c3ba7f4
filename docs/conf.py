"""Sphinx configuration for blockzoo's documentation."""

from __future__ import annotations

import os

import blockzoo

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
exclude_patterns = ["_build"]
copybutton_prompt_text = r">>> |\.\.\. |\$ "
copybutton_prompt_is_regexp = True
