"""Rich tables for tokenizer training and `tokenize --compare`."""

from __future__ import annotations

from rich.markup import escape
from rich.table import Table

from tunekit.console import console


def show_training(report: dict, reused: bool) -> None:
    note = " (cached, inputs unchanged)" if reused else f" in {report['seconds']:.1f} s"
    console.print(f"tokenizer: trained {report['algorithm']} on {report['texts']} texts{note}: "
                  f"{report['actual_vocab_size']} tokens (asked {report['vocab_size']}), "
                  f"special {', '.join(escape(t) for t in report['special_tokens'])}")


def show_comparison(comparison: dict) -> None:
    table = Table(title=f"tokenizers on the {comparison['note']}: {comparison['texts']} texts, "
                        f"{comparison['words']} words", title_justify="left")
    for col in ("tokenizer", "vocab", "tokens/word", "unknown", f"> {comparison['max_length']} tokens"):
        table.add_column(col, justify="left" if col == "tokenizer" else "right", overflow="fold")
    for row in comparison["tokenizers"]:
        fertility = "-" if row["fertility"] is None else f"{row['fertility']:.2f}"
        name = escape(row["name"]) + (" (recipe)" if row["source"] == "recipe" else "")
        table.add_row(name, str(row["vocab_size"]), fertility, f"{100 * row['unk_rate']:.2f}%",
                      f"{100 * row['over_max_length']:.1f}%")
    console.print(table)
