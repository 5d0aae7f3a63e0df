"""Side-by-side benchmarks of fastws against other Python WebSocket servers.

``python -m bench run`` measures, ``python -m bench report`` rewrites the generated part of
docs/benchmarks.md. Servers run as separate processes (bench/servers/), load comes from a small
C program (bench/loadgen.c) built on first use.
"""
