"""kiln: golden images built from layered definitions, verified, then published."""

__version__ = "0.1.0"

# Bumped whenever rendering changes the bytes it produces for the same definitions, so that
# fingerprints (and therefore cache hits and immutable tags) never survive such a change.
RENDER_VERSION = "2"
