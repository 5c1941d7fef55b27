"""kiln: golden images built from layered definitions, verified, then published."""

__version__ = "0.1.0"

# Bumped whenever rendering or normalisation (kiln.normalize) changes the bytes they produce
# for the same definitions, so that fingerprints (and therefore cache hits and immutable tags)
# never survive such a change. 3: normalisation drops shadowed files from the added layers.
RENDER_VERSION = "3"
