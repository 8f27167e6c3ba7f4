"""blockzoo's benchmarks: ``python -m benchmarks`` runs them all and writes a report to ``benchmarks/results/``.

See ``docs/benchmarks.rst`` for how to run, read and check a report.
"""
