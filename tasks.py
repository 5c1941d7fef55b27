"""`invoke --list` in this repo offers kiln's tasks: the same collection as the `kiln` CLI."""

from kiln.cli import namespace as ns

__all__ = ["ns"]
