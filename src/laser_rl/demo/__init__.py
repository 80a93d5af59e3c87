"""The embedded default: a tiny model and a synthetic verifiable task, built on the spot."""
