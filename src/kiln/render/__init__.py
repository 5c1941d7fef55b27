"""Pure renderers: Plan -> Dockerfile text and build context. No engine, no clock, no cwd."""

from kiln.render.context import ContextEntry, context_entries, write_context_dir
from kiln.render.dockerfile import Instruction, Rendered, render_dockerfile

__all__ = [
    "ContextEntry",
    "Instruction",
    "Rendered",
    "context_entries",
    "render_dockerfile",
    "write_context_dir",
]
