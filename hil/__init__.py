"""hil: a hardware-in-the-loop testbench for BMS firmware.

PYTEST_DONT_REWRITE: `hil run` imports this package before it starts pytest, so pytest could not rewrite its
asserts (it warned so on every run). The tests' own asserts are rewritten as ever.
"""
