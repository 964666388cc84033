"""The scaling simulation: the fleet's policy read from the synthesized template, run in simpy.

Run it with `python -m bench.scaling` (bench/scaling/__main__.py).
"""
