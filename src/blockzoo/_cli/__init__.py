"""The pieces of the ``blockzoo`` command line; :mod:`blockzoo.cli` is the public entry point."""
