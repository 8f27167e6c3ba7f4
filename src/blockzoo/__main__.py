"""``python -m blockzoo``: the ``blockzoo`` command (:mod:`blockzoo.cli`)."""

from blockzoo.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
