"""cli/ — the `clsbench` command: the parser and one call-and-print function per command
(`commands`); `python -m clsbench.cli`. Decides nothing: every default of what a run is
lives in `plan`. May import: anything."""
