"""Multi-process (data-parallel) runs: who writes what, and launching through torchrun.

Every process trains on its shard of each global batch; only the main process (rank 0)
writes the run directory, prints, and evaluates. The data steps run on the main process
first so the others read a finished cache. A user may launch tunekit with `torchrun` or
`accelerate launch` themselves; `tunekit finetune --nproc N` does it for them.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence

EXIT_DIR_ENV = "TUNEKIT_EXIT_DIR"  # where each rank leaves its exit code for the launcher
LAUNCHED_ENV = "TUNEKIT_LAUNCHED"  # set for the processes `--nproc` starts: the parent showed the data
                                   # and holds the run's lock


def launched() -> bool:
    """A process started by `finetune --nproc` (its parent did the checks and holds the lock)."""
    return bool(os.environ.get(LAUNCHED_ENV))


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main() -> bool:
    return rank() == 0


def init_processes() -> None:
    """Join the process group (gloo on CPU, NCCL on GPUs) before any step that needs a barrier."""
    if world_size() < 2:
        return
    import torch
    from accelerate import PartialState

    PartialState(cpu=not torch.cuda.is_available())


def barrier() -> None:
    if world_size() < 2:
        return
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


@contextmanager
def main_first() -> Iterator[None]:
    """The main process runs the block first (writing caches); the others then run it (reading).

    When the main process fails inside, the launcher stops the waiting ones."""
    if not is_main():
        barrier()
    yield
    if is_main():
        barrier()


def any_rank(flag: bool) -> bool:
    """True on every rank when the flag is set on any of them (a collective: all ranks call it)."""
    if world_size() < 2:
        return flag
    import torch
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return flag
    device = "cuda" if dist.get_backend() == "nccl" else "cpu"
    value = torch.tensor([1 if flag else 0], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def record_exit(code: int) -> None:
    """Leave this rank's exit code where the launcher finds it (torchrun itself says only 1)."""
    folder = os.environ.get(EXIT_DIR_ENV)
    if folder and world_size() > 1:
        Path(folder, f"rank-{rank()}").write_text(str(code), encoding="utf-8")


def launch(nproc: int, cli_args: Sequence[str]) -> int:
    """Run `tunekit <cli_args>` in `nproc` processes through torchrun; return the exit code.

    The code is rank 0's when it failed, else the first failing rank's, so a bad input (2) or
    a signal (130/143) reads the same as in a single process.
    """
    import logging
    import tempfile

    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser, run

    logging.getLogger("torch.distributed.elastic").setLevel(logging.ERROR)  # tunekit reports outcomes itself
    exit_dir = tempfile.mkdtemp(prefix="tunekit-exit-")
    os.environ[EXIT_DIR_ENV] = exit_dir
    # Split the cores between the processes (torchrun would set 1 and print a banner about it).
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    args = get_args_parser().parse_args(
        ["--standalone", f"--nproc-per-node={nproc}", "--module", "tunekit", *cli_args])
    try:
        run(args)
        return 0
    except ChildFailedError:
        return _recorded_exit(Path(exit_dir)) or 1
    except SignalException as exc:
        return _recorded_exit(Path(exit_dir)) or 128 + int(exc.sigval)
    finally:
        import shutil

        shutil.rmtree(exit_dir, ignore_errors=True)


def _recorded_exit(folder: Path) -> int:
    codes = {int(p.name.split("-")[1]): int(p.read_text()) for p in folder.glob("rank-*")}
    failed = sorted((r, c) for r, c in codes.items() if c)
    return dict(failed).get(0) or (failed[0][1] if failed else 0)


def check_distributed(cfg, nproc: int) -> None:
    """Problems with train.distributed that would otherwise surface in every process at once.

    `cfg` is the recipe's DistributedConfig; `nproc` the number of processes the run will have.
    """
    import importlib.util
    import json

    from tunekit.errors import RecipeError

    if cfg.deepspeed:
        path = Path(cfg.deepspeed)
        if not path.is_file():
            raise RecipeError(f"train.distributed.deepspeed: {path} does not exist",
                              "point it at a DeepSpeed JSON config file")
        try:
            json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise RecipeError(f"train.distributed.deepspeed: {path} is not valid JSON ({exc})",
                              "fix the file; DeepSpeed configs are JSON") from None
        if importlib.util.find_spec("deepspeed") is None:
            raise RecipeError("train.distributed.deepspeed is set, but DeepSpeed is not installed",
                              "pip install deepspeed (it needs CUDA), or remove train.distributed.deepspeed")
    if cfg.backend == "nccl" or cfg.deepspeed:
        import torch

        if not torch.cuda.is_available():
            what = "the nccl backend" if cfg.backend == "nccl" else "DeepSpeed"
            raise RecipeError(f"train.distributed asks for {what}, which needs CUDA GPUs; this machine has none",
                              "use backend: gloo (or leave it unset) to run on CPU processes")
    if cfg.fsdp and nproc < 2:
        raise RecipeError("train.distributed.fsdp shards the model over processes, but this run has one",
                          "launch with --nproc 2 or more (or torchrun), or remove train.distributed.fsdp")


def distributed_arguments(cfg) -> dict:
    """TrainingArguments keywords for train.distributed (nothing when it is empty)."""
    args: dict = {}
    if cfg.fsdp:
        args["fsdp"] = list(cfg.fsdp)
        args["fsdp_config"] = dict(cfg.fsdp_config)
    if cfg.deepspeed:
        args["deepspeed"] = cfg.deepspeed
    if cfg.backend and world_size() > 1:  # a backend makes the Trainer join a process group
        args["ddp_backend"] = cfg.backend
    return args
