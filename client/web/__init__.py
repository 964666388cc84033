"""The web tier: `python -m client web`, a browser front end and JSON API for one stack."""
