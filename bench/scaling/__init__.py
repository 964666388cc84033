"""The scaling simulation: the fleet's policy from the synthesized template, run by simpy (`python -m bench.scaling`)."""
