"""The reliability suite: faults, load and bad input against the local stack (issue 4)."""
