"""Rich output of `finetune --dry-run`: the plan, the memory estimate, and what to change."""

from __future__ import annotations

from rich.markup import escape
from rich.table import Table

from tunekit.console import console
from tunekit.pipeline.planning import Plan, format_size

# What each estimate row holds, for the reader who wonders where a number comes from.
MEMORY_ROWS = (
    ("weights", "weights", "parameters as stored (fp32 master weights{amp})"),
    ("gradients", "gradients", "fp32, trainable parameters only{ddp}"),
    ("optimizer", "optimizer state", "AdamW: two fp32 moments per trainable parameter"),
    ("activations", "activations", "kept for backward at batch {batch} x {seq} tokens{ckpt}"),
    ("overhead", "overhead", "{overhead}"),
)


def show_plan(plan: Plan) -> None:
    name = plan.recipe.get("name", "")
    console.print(f"[bold]finetune --dry-run[/] {escape(name)}: a plan only; no training outputs "
                  f"(checkpoints, model, manifest) are written in {escape(plan.run_dir)}")
    console.print("[bold]resolved recipe[/]")
    console.print(escape(plan.recipe_yaml.rstrip()), soft_wrap=True, highlight=False)
    console.print(f"data: {escape(plan.data_note)}", soft_wrap=True)
    for note in plan.notes:
        console.print(f"[yellow]note:[/] {escape(note)}", soft_wrap=True)

    data = Table(title="splits (after prepare and tokenize)", title_justify="left")
    for col in ("split", "rows", "tokens p95", "tokens max"):
        data.add_column(col, justify="left" if col == "split" else "right")
    for split, s in plan.splits.items():
        data.add_row(split, f"{s['rows']:,}", f"{s['tokens_p95']:.0f}", str(s["tokens_max"]))
    console.print(data)

    steps, params = plan.steps, plan.parameters
    knobs = plan.knobs
    run = Table(title="training", title_justify="left")
    run.add_column("item")
    run.add_column("value", justify="right")
    cfg = plan.recipe["train"]
    processes = steps.global_batch // (cfg["batch_size"] * cfg["grad_accum"])
    run.add_row("global batch", f"{steps.global_batch} = {cfg['batch_size']} x {cfg['grad_accum']} accumulation"
                + (f" x {processes} processes" if processes > 1 else ""))
    run.add_row("steps per epoch", f"{steps.steps_per_epoch:,}")
    run.add_row("total steps", f"{steps.total_steps:,}" + (" (train.max_steps)" if cfg.get("max_steps") else "")
                + f", {steps.epochs:.2f} epochs")
    share = 100 * params["trainable"] / max(params["total"], 1)
    run.add_row("trainable parameters", f"{params['trainable']:,} of {params['total']:,} ({share:.1f}%)")
    run.add_row("device, precision", f"{knobs.device}, {knobs.precision}")
    console.print(run)

    show_memory(plan)


def show_memory(plan: Plan) -> None:
    knobs, memory = plan.knobs, plan.memory
    fills = {
        "amp": " + 16-bit copies autocast makes" if knobs.precision != "fp32" else "",
        "ddp": " (+ DDP's bucket copy)" if knobs.ddp else "",
        "batch": knobs.batch_size, "seq": knobs.seq_len,
        "ckpt": ", gradient checkpointing" if knobs.gradient_checkpointing else "",
        "overhead": "CUDA context" if knobs.device == "cuda" else "none on CPU",
    }
    table = Table(title=f"estimated peak {knobs.device} memory", title_justify="left")
    table.add_column("part")
    table.add_column("size", justify="right")
    table.add_column("what")
    for key, label, what in MEMORY_ROWS:
        table.add_row(label, format_size(getattr(memory, key)), what.format(**fills))
    table.add_row("[bold]total[/]", f"[bold]{format_size(memory.total)}[/]", "")
    console.print(table)
    console.print(f"padded length: {escape(plan.length_note)}", soft_wrap=True)

    if plan.limit is None:
        console.print("no budget given: add --gpu-memory SIZE (e.g. 24GiB) to check that it fits")
        return
    budget = format_size(plan.limit)
    if plan.fits:
        share = 100 * memory.total / plan.limit
        console.print(f"[green]fits:[/] {format_size(memory.total)} of {budget} ({share:.0f}%)")
        if plan.tight:
            console.print("[yellow]tight:[/] above 90% of the budget; the CUDA allocator reserves "
                          "memory beyond live tensors (8-16% more in tunekit's bench), which may tip it over")
        return
    console.print(f"[bold red]will not fit:[/] {format_size(memory.total)} needed, {budget} available "
                  f"(over by {format_size(memory.total - plan.limit)})")
    if not plan.advice:
        console.print("no single change in the list below helps; the weights alone may not fit")
        return
    advice = Table(title="what to change (each alone, largest saving first)", title_justify="left")
    for col in ("change", "estimate", "saves", "fits"):
        advice.add_column(col, justify="left" if col == "change" else "right")
    for a in plan.advice:
        advice.add_row(escape(a.change), format_size(a.total), format_size(a.saves),
                       "[green]yes[/]" if a.fits else "[red]no[/]")
    console.print(advice)
