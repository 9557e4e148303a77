"""The benchmark suite: ``python -m bench``.

Benchmarks are not tests: nothing here fails on a duration. Each row measures one
careteam feature and, in the same run and on the same server, a baseline; every figure
is reported as a ratio to that baseline, with medians over ``--runs`` runs, the peak
memory of each process, the bytes stored per event, and which core each process was
pinned to. The report (Markdown, JSON and, when matplotlib is installed, PNG charts) is
written to ``--out`` (default ``bench-results/``).

One module per row (``row1_appends``, ``row2_rebuild``, ``row4_lag``, ...; rows 8 and 9
share ``portal_reads``), registered in ``bench.rows``; a row whose feature does not exist
yet reports itself skipped.
"""
