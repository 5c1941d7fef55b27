"""`kiln graph`: the images, their bases and layers, as a picture people read at a glance.

Mermaid for Markdown (GitHub and GitLab draw it), DOT for graphviz (`dot -Tsvg`). With a
status per image (the nightly report's: rebuilt, unchanged, failed, skipped), images are
coloured by it. Pure: plans in, text out.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

from kiln.model import BootstrapBase, ImageBase, Plan, RefBase, RootfsBase

COLOURS = {"rebuilt": "#cce5ff", "unchanged": "#e2e3e5", "failed": "#f8d7da",
           "skipped": "#fff3cd", "verified": "#d4edda"}


def _base(plan: Plan) -> tuple[str, str] | None:
    """(node id, label) of a base that is not a kiln image; None for a kiln parent."""
    base = plan.image.base
    if isinstance(base, ImageBase):
        return None
    if isinstance(base, BootstrapBase):
        return f"base_{base.suite}_{base.variant}", f"debian {base.suite} ({base.variant})"
    if isinstance(base, RefBase):
        return f"ref_{hashlib.sha256(base.ref.encode()).hexdigest()[:8]}", base.ref.split("@")[0]
    assert isinstance(base, RootfsBase)
    return f"rootfs_{base.sha256[:8]}", f"rootfs {base.path}"


def _id(kind: str, name: str) -> str:
    return f"{kind}_" + "".join(c if c.isalnum() else "_" for c in name)


def mermaid(plans: Sequence[Plan], status: Mapping[str, str] | None = None) -> str:
    status = status or {}
    out = ["flowchart BT"]
    for plan in plans:
        image = _id("image", plan.image.name)
        state = status.get(plan.image.name)
        label = plan.image.name + (f" ({state})" if state else "")
        out.append(f'  {image}["{label}"]')
        if base := _base(plan):
            out.append(f'  {base[0]}[("{base[1]}")] --> {image}')
        else:
            assert isinstance(plan.image.base, ImageBase)
            out.append(f"  {_id('image', plan.image.base.image)} --> {image}")
        layers = ", ".join(layer.name for layer in plan.layers) or "no layers"
        out.append(f'  {_id("layers", plan.image.name)}>"{layers}"] -.-> {image}')
        if state in COLOURS:
            out.append(f"  style {image} fill:{COLOURS[state]}")
    return "\n".join(out) + "\n"


def dot(plans: Sequence[Plan], status: Mapping[str, str] | None = None) -> str:
    status = status or {}
    out = ["digraph kiln {", "  rankdir=BT;", '  node [fontname="sans-serif"];']
    for plan in plans:
        image = _id("image", plan.image.name)
        state = status.get(plan.image.name)
        fill = f', style=filled, fillcolor="{COLOURS[state]}"' if state in COLOURS else ""
        label = plan.image.name + (f"\\n({state})" if state else "")
        out.append(f'  {image} [label="{label}", shape=box{fill}];')
        if base := _base(plan):
            out.append(f'  {base[0]} [label="{base[1]}", shape=cylinder];')
            out.append(f"  {base[0]} -> {image};")
        else:
            assert isinstance(plan.image.base, ImageBase)
            out.append(f"  {_id('image', plan.image.base.image)} -> {image};")
        layers = "\\n".join(layer.name for layer in plan.layers) or "no layers"
        out.append(f'  {_id("layers", plan.image.name)} [label="{layers}", shape=note];')
        out.append(f"  {_id('layers', plan.image.name)} -> {image} [style=dashed];")
    out.append("}")
    return "\n".join(out) + "\n"
