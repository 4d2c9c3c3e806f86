"""Training order that depends only on (seed, epoch), so a resumed run sees the same batches.

The Trainer's own length-grouped sampler draws its permutation from the global torch RNG
when an epoch starts; after a mid-epoch resume that RNG is in another state (dropout has
consumed it), so the rest of the epoch would come in a different order. These samplers
seed a private generator with seed + epoch instead; the Trainer (through accelerate)
calls `set_epoch` before every epoch, and every process of a multi-process run draws
the same order before accelerate shards it.
"""

from __future__ import annotations

from typing import Iterator, Optional, Sequence


class EpochSeededSampler:
    """A shuffled order per epoch, optionally grouped by length (mega-batches sorted by length)."""

    def __init__(self, size: int, seed: int, lengths: Optional[Sequence[int]] = None, batch_size: int = 1):
        self.size = size
        self.seed = seed
        self.lengths = list(lengths) if lengths is not None else None
        self.batch_size = batch_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.size

    def __iter__(self) -> Iterator[int]:
        import torch

        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        if self.lengths is None:
            return iter(torch.randperm(self.size, generator=generator).tolist())
        from transformers.trainer_pt_utils import get_length_grouped_indices

        return iter(get_length_grouped_indices(self.lengths, self.batch_size, generator=generator))


def train_sampler(dataset, seed: int, group_by_length: bool, batch_size: int) -> EpochSeededSampler:
    """`batch_size` is the per-step batch times gradient accumulation, as the Trainer's own."""
    if not group_by_length:
        return EpochSeededSampler(len(dataset), seed)
    lengths = [len(ids) for ids in dataset["input_ids"]]  # one column read, not row by row
    return EpochSeededSampler(len(dataset), seed, lengths, batch_size)


def trainer_class(kind: str = "Trainer"):
    """The Trainer (or, kind "Seq2SeqTrainer", the one that generates during validation) with
    tunekit's seeded training order (built lazily: transformers is heavy)."""
    from transformers import Seq2SeqTrainer, Trainer

    class TunekitTrainer(Seq2SeqTrainer if kind == "Seq2SeqTrainer" else Trainer):
        def _get_train_sampler(self, train_dataset=None):
            dataset = train_dataset if train_dataset is not None else self.train_dataset
            return train_sampler(dataset, self.args.seed, self.args.train_sampling_strategy == "group_by_length",
                                 self.args.train_batch_size * self.args.gradient_accumulation_steps)

    return TunekitTrainer


def trace_batches(model) -> None:
    """TUNEKIT_TRACE_BATCHES=FILE appends one line per training micro-batch: short hashes of
    its rows' token ids. Two runs saw the same data in the same order iff the files match."""
    import hashlib
    import json
    import os

    path = os.environ.get("TUNEKIT_TRACE_BATCHES")
    if not path:
        return

    def record(module, args, kwargs):
        ids = kwargs.get("input_ids")
        if module.training and ids is not None:
            rows = [hashlib.sha1(str(row).encode()).hexdigest()[:10] for row in ids.tolist()]
            with open(path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(rows) + "\n")

    model.register_forward_pre_hook(record, with_kwargs=True)
