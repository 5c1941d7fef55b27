"""build -> (verify -> publish): named steps in order, as the README tells it.

Specs (Plan, Prepared) are frozen; the run's state is the Context (kiln.context), whose
`prepared(name)` prepares each image once per process.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from typing import Any

from kiln import buildkit, hermetic, noop, planner, records
from kiln.bootstrap import bootstrap, import_rootfs
from kiln.buildkit import Output, Step
from kiln.checks import check_names, check_plans
from kiln.compose import compose_all
from kiln.context import Action, BuildResult, Context, ParentSource, Prepared, PulledParent
from kiln.engine import Engine
from kiln.errors import BuildError, KilnError
from kiln.fingerprint import image_repository
from kiln.load import Project
from kiln.model import BootstrapBase, ImageBase, Plan, RefBase, RootfsBase
from kiln.normalize import normalize_image
from kiln.records import state_dir
from kiln.render import checks
from kiln.testsuite import Target
from kiln.verify import gate


def validate(project: Project) -> list[Plan]:
    """Every definition, checked at once: nothing is built while any of them is invalid."""
    check_names(project.root)
    plans = compose_all(project)
    check_plans(project.root, plans)
    return plans


def build_image(ctx: Context, name: str) -> BuildResult:
    if name in ctx.results:
        return ctx.results[name]
    before = noop.stamp(str(ctx.project.root))  # before any input is read
    prepared = ctx.prepared(name)
    hermetic.check_lock(ctx.project.root, prepared.plan)
    ensure_base(ctx, prepared)
    result = reuse_existing(ctx, prepared) or run_build(ctx, prepared)
    tag_image(ctx, prepared, result.image_id)
    record_inputs(ctx, prepared, result.image_id)
    verify_image(ctx, prepared, result.image_id)
    result = move_tags(ctx, prepared, result)
    ctx.results[name] = result
    noop.note(name, result.action)
    remember_noop(ctx, prepared, result, before)
    return result


def build_all(ctx: Context) -> list[BuildResult]:
    return [build_image(ctx, plan.image.name) for plan in validate(ctx.project)]


# steps ---------------------------------------------------------------------------------------
def ensure_base(ctx: Context, prepared: Prepared) -> None:
    """Make the base the Dockerfile's FROM names exist in the engine, building it if need be."""
    base, ref = prepared.plan.image.base, prepared.base_ref
    if isinstance(base, ImageBase):
        if ctx.parents is not None and base.image not in ctx.results:
            pull_parent(ctx, base.image, ctx.parents)
        build_image(ctx, base.image)  # the pulled parent's result, when it was pulled
        return
    if ctx.engine.image_id(ref):
        return
    if isinstance(base, BootstrapBase):
        with ctx.ui.task(f"bootstrap {ref} from {base.mirror} with mmdebstrap"):
            bootstrap(ctx.engine, base, ref)
            normalize_image(ctx.engine, ref, keep_layers=1)  # the import's config: its clock
    elif isinstance(base, RootfsBase):
        with ctx.ui.task(f"import {base.path} as {ref}"):
            import_rootfs(ctx.engine, ctx.project.root, base, ref)
            normalize_image(ctx.engine, ref, keep_layers=1)
    else:
        assert isinstance(base, RefBase)
        with ctx.ui.task(f"pull {ref}"):
            ctx.engine.pull(ref)


def pull_parent(ctx: Context, name: str, source: ParentSource) -> None:
    """Take the parent `name` from the registry when its definitions are published there: it
    is then neither built nor verified here (its signed verification record covers it), nor
    are its own parents. One already in the engine is reused as always."""
    if ctx.options.force or ctx.options.nocache:
        return  # asked to build everything again
    prepared = ctx.prepared(name)
    if ctx.engine.image_id(prepared.ref) is not None:
        return
    pulled = source(prepared)
    if pulled is None:
        return  # not published: build_image builds it
    tag_image(ctx, prepared, pulled.image_id)
    planner.record(ctx.project.root, name, prepared.fingerprint,
                   dict(prepared.inputs), pulled.image_id)
    ctx.pulled[name] = pulled
    ctx.results[name] = dataclasses.replace(
        _result(prepared, pulled.image_id, "pulled", pulled.seconds), tags=(prepared.ref,))
    ctx.ui.info(f"[bold]{name}[/]: pulled {pulled.reference} ({pulled.bytes / 1e6:.1f} MB in "
                f"{pulled.seconds:.1f}s, from {pulled.channel}) instead of building it")


def reuse_existing(ctx: Context, prepared: Prepared) -> BuildResult | None:
    """Same fingerprint, same image: an unchanged definition is never built again."""
    if ctx.options.force or ctx.options.nocache:
        return None
    image_id = ctx.engine.image_id(prepared.ref)
    if image_id is None:
        return None
    ctx.ui.info(f"[bold]{prepared.plan.image.name}[/]: up to date ({prepared.ref}, "
                "fingerprint unchanged)")
    return _result(prepared, image_id, "up to date", 0.0)


def run_build(ctx: Context, prepared: Prepared) -> BuildResult:
    image = prepared.plan.image
    instructions = prepared.rendered.instructions
    tail: deque[str] = deque(maxlen=40)
    current = Step(0, len(instructions), "")
    with ctx.ui.task(f"build {image.name} -> {prepared.ref}"), hermetic.build_inputs(
            ctx.project.root, prepared.plan, prepared.rendered.dockerfile, prepared.entries,
            ctx.options.secrets) as inputs_:
        try:
            for event in buildkit.build(inputs_.context, prepared.ref, instructions,
                                        nocache=ctx.options.nocache, secrets=inputs_.secrets,
                                        network=ctx.options.network, tail=tail):
                if isinstance(event, Step):
                    current = event
                    layer = _layer_of(instructions, event.number)
                    ctx.ui.step(f"{layer} · step {event.number}/{event.total} "
                                f"{_first_line(event.text)}")
                elif isinstance(event, Output):
                    ctx.ui.output(event.line)
        except BuildError as exc:
            raise BuildError(_build_failure(prepared, current, str(exc), tail)) from None
        if ctx.engine.image_id(prepared.ref) is None:
            raise BuildError(f"{image.path}: the engine reported success but {prepared.ref} "
                             "does not exist")
        check_steps(ctx, prepared)
        image_id = normalize(ctx, prepared)
        seconds = ctx.ui.elapsed()
    ctx.ui.info(f"[bold green]built[/] {image.name} {image_id[:19]} in {seconds:.1f}s")
    return _result(prepared, image_id, "built", seconds)


def check_steps(ctx: Context, prepared: Prepared) -> None:
    """The steps the engine ran are the rendered instructions, one for one (render.checks says
    why the image history is the signal); otherwise the image is removed, never tagged."""
    try:
        ran = ctx.engine.history(prepared.ref)
        added = ran[len(ctx.engine.history(prepared.base_ref)):]
    except KilnError:
        ctx.engine.remove_image(prepared.ref)  # unchecked, it must not pass for up to date
        raise
    problem = checks.steps_problem(added, [i.text for i in prepared.rendered.instructions])
    if problem:
        ctx.engine.remove_image(prepared.ref)
        raise BuildError(f"{prepared.plan.image.path}: the engine did not run the rendered "
                         f"Dockerfile step for step: {problem} (nothing was kept; a definition "
                         "value changed the Dockerfile's shape: please report this as a kiln bug)")


def normalize(ctx: Context, prepared: Prepared) -> str:
    """Same inputs, same bytes: rewrite the layers this image added, and its config."""
    base_layers = len(ctx.engine.inspect_image(prepared.base_ref)["RootFS"]["Layers"])
    done = normalize_image(ctx.engine, prepared.ref, keep_layers=base_layers,
                           drop=hermetic.mount_points(prepared.plan),
                           memo=state_dir(ctx.project.root) / "normalized")
    if done.rewritten:
        ctx.ui.step(f"normalised {done.rewritten} layers and the config -> "
                    f"{done.image_id[:19]} ({done.timing()})")
    else:
        ctx.ui.step(f"normalised before (same raw image) -> {done.image_id[:19]}")
    return done.image_id


def tag_image(ctx: Context, prepared: Prepared, image_id: str) -> None:
    """The immutable tag (the fingerprint's), which names these inputs whatever the verdict."""
    ctx.engine.ensure_tags(image_id, (prepared.ref,))


def move_tags(ctx: Context, prepared: Prepared, result: BuildResult) -> BuildResult:
    """Moving tags (`latest`, the version, the image's `tags`) go onto verified images only:
    an unverified build leaves them on the last verified one."""
    record = ctx.verified.get(prepared.plan.image.name)
    if record is None or not record.passed or record.image_id != result.image_id:
        moving = _tags(prepared)[1:]
        ctx.ui.warn(f"{prepared.plan.image.name} is not verified: {', '.join(moving)} not moved "
                    f"(they stay on the last verified image)")
        return dataclasses.replace(result, tags=(prepared.ref,))
    move_verified_tags(ctx.engine, prepared, result.image_id)
    return result


def move_verified_tags(engine: Engine, prepared: Prepared, image_id: str) -> None:
    engine.ensure_tags(image_id, _tags(prepared)[1:])


def verify_image(ctx: Context, prepared: Prepared, image_id: str) -> None:
    """The gate: run the image's suite (unless a passing record covers it) and record it."""
    target = Target(prepared.plan, prepared.ref, image_id, prepared.fingerprint)
    ctx.verified[target.name] = gate(ctx.engine, ctx.project.root, target, ctx.ui,
                                     enabled=ctx.options.verify, keep=ctx.options.keep,
                                     force=ctx.options.force)


def remember_noop(ctx: Context, prepared: Prepared, result: BuildResult, before: str) -> None:
    """Let the next `kiln build` of this image answer without the pipeline (kiln.noop), if
    it ended verified, as a container image only, with its parents verified too."""
    image, root = prepared.plan.image, str(ctx.project.root)
    record = ctx.verified.get(image.name)
    parent = (ctx.chains.get(image.base.image) if isinstance(image.base, ImageBase)
              else [])
    if record is None or not record.passed or parent is None or "vm" in image.targets:
        noop.forget(root, image.name)
        return
    ctx.chains[image.name] = [*parent, {
        "image": image.name, "ref": result.ref, "id": result.image_id,
        "tags": list(result.tags),
        "verify_record": str(records.path(ctx.project.root, result.image_id, "container"))}]
    noop.remember(root, image.name, before, ctx.chains[image.name])


def record_inputs(ctx: Context, prepared: Prepared, image_id: str) -> None:
    """Remember what this image was made of, so `invoke plan` can say what changed since."""
    planner.record(ctx.project.root, prepared.plan.image.name, prepared.fingerprint,
                   dict(prepared.inputs), image_id)
    records.first_built(ctx.project.root, prepared.fingerprint)  # the immutable tag's date


# helpers -------------------------------------------------------------------------------------
def _tags(prepared: Prepared) -> tuple[str, ...]:
    image = prepared.plan.image
    repo = image_repository(image.name)
    extra = dict.fromkeys(("latest", image.version, *image.tags))
    return (prepared.ref, *(f"{repo}:{tag}" for tag in extra))


def _result(prepared: Prepared, image_id: str, action: Action,
            seconds: float) -> BuildResult:
    return BuildResult(prepared.plan.image.name, prepared.ref, image_id, prepared.fingerprint,
                       action, seconds, _tags(prepared))


def _layer_of(instructions: tuple[Any, ...], number: int) -> str:
    if 0 < number <= len(instructions):
        return instructions[number - 1].layer or "kiln"
    return "kiln"


def _first_line(text: str) -> str:
    line = text.strip().split("\n")[0].rstrip("\\ ")
    return line if len(line) <= 90 else line[:87] + "..."


def _build_failure(prepared: Prepared, step: Step, error: str, tail: deque[str]) -> str:
    image = prepared.plan.image
    layer = _layer_of(prepared.rendered.instructions, step.number)
    where = (f"layer '{layer}' (layers/{layer}/layer.yaml)" if layer != "kiln"
             else "kiln's own instructions")
    lines = [f"{image.path}: build of '{image.name}' failed in {where}, "
             f"step {step.number}/{step.total}: {_first_line(step.text)}",
             f"  {error}"]
    lines += [f"  | {line}" for line in tail]
    return "\n".join(lines)


__all__ = ["BuildResult", "Context", "KilnError", "ParentSource", "Prepared", "PulledParent",
           "build_all", "build_image", "validate"]
