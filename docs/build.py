"""Build the whole documentation site, in English and in Spanish, with warnings as errors.

Usage::

    python docs/build.py                 # both languages: docs/_build/html and docs/_build/html/es
    python docs/build.py --language es   # one of them
    python docs/build.py --update-po     # refresh the Spanish catalogs of the course path

The English site is the root of ``docs/_build/html``, the Spanish one its
``es/`` folder, so that the sidebar's language switch links each page to the
same page in the other language. Each build runs the course path's scripts
(``examples/``) and draws their figures in its own language.

``--update-po`` extracts the course path's text (without running the
scripts) and merges it into ``docs/locale/es/LC_MESSAGES/course/*.po`` with
sphinx-intl: new paragraphs appear there untranslated, changed ones fuzzy,
and until they are translated the Spanish pages show them in English.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

DOCS = Path(__file__).resolve().parent
OUT = DOCS / "_build"
LANGUAGES = {"en": OUT / "html", "es": OUT / "html" / "es"}


def sphinx(*args: str) -> None:
    command = [sys.executable, "-m", "sphinx", *args]
    print("+", " ".join(command), flush=True)
    subprocess.run(command, check=True)


def build(language: str) -> None:
    """One language's site, from scratch, with warnings as errors."""
    out = LANGUAGES[language]
    doctrees = OUT / f"doctrees-{language}"
    shutil.rmtree(doctrees, ignore_errors=True)
    other_sites = set(LANGUAGES.values())
    for path in out.glob("*"):  # no page or image of an earlier build survives, but the other language's site
        if path in other_sites:
            continue
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
    sphinx(
        "-W", "--keep-going", "-q", "-b", "html", "-d", str(doctrees), "-D", f"language={language}", str(DOCS), str(out)
    )


def update_po() -> None:
    """Extract the course path's messages and merge them into the Spanish catalogs."""
    pot = OUT / "gettext"
    shutil.rmtree(pot, ignore_errors=True)
    shutil.rmtree(DOCS / "course", ignore_errors=True)  # the gallery's pages, regenerated unrun: no timings
    sphinx("-q", "-b", "gettext", "-D", "plot_gallery=0", str(DOCS), str(pot))
    for catalog in pot.rglob("*.pot"):  # only the course path is translated
        if catalog.parent != pot / "course" or catalog.stem == "sg_execution_times":
            catalog.unlink()
    sphinx_intl = [sys.executable, "-m", "sphinx_intl"]
    subprocess.run([*sphinx_intl, "update", "-p", str(pot), "-d", str(DOCS / "locale"), "-l", "es"], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--language", choices=sorted(LANGUAGES), action="append", help="build only this language")
    parser.add_argument("--update-po", action="store_true", help="refresh the Spanish catalogs and stop")
    args = parser.parse_args()
    if args.update_po:
        update_po()
        return
    for language in args.language or ["en", "es"]:
        start = time.perf_counter()
        build(language)
        print(f"built the {language} site in {time.perf_counter() - start:.0f} s: {LANGUAGES[language]}", flush=True)


if __name__ == "__main__":
    main()
