"""Reports of a run: per-test plots and MDF4 traces, and a static `index.html` (see `hil.report.html`).

Everything here reads files a run wrote (trace CSVs, CAN logs) and plain data (outcomes, measurements),
never pytest objects, so the same code serves `hil run`, a plain `pytest --hil-report DIR` and xdist runs.
"""
