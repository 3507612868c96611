"""OrbitLab stack program: one Backplane and the stack's Sectors (see orbitlab/program.py)."""

from orbitlab.program import main

main()
