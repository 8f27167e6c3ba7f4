"""Sphinx configuration for blockzoo's documentation."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import blockzoo

# docs/_ext holds this site's own extension (generated tables, re-export links).
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
exclude_patterns = ["_build", "generated/tables"]
copybutton_prompt_text = r">>> |\.\.\. |\$ "
copybutton_prompt_is_regexp = True
