"""The pure job functions: no AWS, no I/O beyond the bytes they are given."""
