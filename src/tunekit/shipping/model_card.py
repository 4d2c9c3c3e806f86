"""The README.md model card `tunekit push` ships: Hub metadata in YAML front matter (built with
huggingface_hub's ModelCardData, so `ModelCard.load` reads it back), then what the model is,
how it scored (with the 95% intervals when eval recorded them), what it was trained on, what
it is for and not for, how to load it, and the resolved recipe that made it.

Everything comes from the run directory; nothing here touches the network or a token.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

# tunekit task -> the Hub's pipeline_tag
PIPELINE_TAGS = {"classification": "text-classification", "qa": "question-answering",
                 "summarization": "summarization", "translation": "translation",
                 "causal_lm": "text-generation"}
AUTO_CLASSES = {"classification": "AutoModelForSequenceClassification",
                "qa": "AutoModelForQuestionAnswering", "summarization": "AutoModelForSeq2SeqLM",
                "translation": "AutoModelForSeq2SeqLM", "causal_lm": "AutoModelForCausalLM"}
TASK_WORDS = {"classification": "text classification", "qa": "extractive question answering",
              "summarization": "summarization", "translation": "translation",
              "causal_lm": "text generation"}
INTENDED_USE = {
    "classification": "Sorting short texts into the labels it was trained on{labels}. Every input gets one "
                      "of those labels, however unrelated it is, so inputs outside that scope need a check "
                      "of their own.",
    "qa": "Finding the answer to a question inside a context passage you supply (extractive question "
          "answering). It knows nothing beyond the passage, and it may return a span even when the "
          "passage holds no answer.",
    "summarization": "Writing short summaries of documents like those in its training data.",
    "translation": "Translating text in the language pair and domain of its training data.",
    "causal_lm": "Continuing or answering prompts in the format and style of its training data.",
}
SKIPPED_METRICS = {"n"}  # shown in the sentence above the table instead


@dataclass
class CardFacts:
    """What the card says, gathered from the run directory and the model folder."""
    task: str
    load_ref: str                     # what from_pretrained is given in the snippets: a repo id or folder
    weights: str                      # "full" | "adapter" | "merged"
    title: str
    base_model: Optional[str] = None  # as the recipe names it
    base_model_id: Optional[str] = None  # the same as a Hub id, when it is one (front matter)
    peft_type: Optional[str] = None
    label_names: list[str] = field(default_factory=list)
    manifest: dict = field(default_factory=dict)
    metrics: Optional[dict] = None
    recipe_yaml: Optional[str] = None
    repo_id: Optional[str] = None


def card_metadata(facts: CardFacts) -> str:
    from huggingface_hub import ModelCardData

    tags = ["tunekit", facts.task]
    if facts.weights == "adapter":
        tags += ["peft", (facts.peft_type or "adapter").lower()]
    data = ModelCardData(base_model=facts.base_model_id, pipeline_tag=PIPELINE_TAGS.get(facts.task),
                         library_name="peft" if facts.weights == "adapter" else "transformers", tags=tags)
    return data.to_yaml()


def build_card(facts: CardFacts) -> str:
    sections = [_summary(facts), _evaluation(facts), _training_data(facts), _intended_use(facts),
                _limitations(facts), _how_to_use(facts), _recipe(facts)]
    body = "\n\n".join(s for s in sections if s)
    return f"---\n{card_metadata(facts)}\n---\n\n{body}\n"


def _summary(facts: CardFacts) -> str:
    base = facts.base_model_id or (_source_name(facts.base_model) if facts.base_model else None)
    is_folder = base and not facts.base_model_id and "://" not in (facts.base_model or "")
    local = " (a local model folder)" if is_folder else ""
    adapter = facts.peft_type or "PEFT"
    weights = {"full": "the whole model, ready to load on its own",
               "adapter": f"a {adapter} adapter only: it loads on top of its base model, which is not included",
               "merged": f"a {adapter} adapter merged into its base model's weights: the whole model"}[facts.weights]
    lines = [f"# {facts.title}", "",
             f"A {TASK_WORDS.get(facts.task, facts.task)} model fine-tuned with tunekit"
             + (f" from `{base}`{local}." if base else "."), "",
             f"- Weights: {weights}"]
    if facts.label_names:
        lines.append(f"- Labels: {', '.join(f'`{n}`' for n in facts.label_names)}")
    params = facts.manifest.get("parameters") or {}
    if params.get("trainable") and params.get("total"):
        lines.append(f"- Trained parameters: {params['trainable']:,} of {params['total']:,}")
    if facts.manifest.get("seed") is not None:
        lines.append(f"- Seed: {facts.manifest['seed']}")
    env = facts.manifest.get("environment") or {}
    versions = ", ".join(f"{k} {env[k]}" for k in ("tunekit", "transformers", "torch") if env.get(k))
    if versions:
        lines.append(f"- Software: {versions}")
    return "\n".join(lines)


def _fmt(value: float) -> str:
    if isinstance(value, int):
        return str(value)
    return f"{value:.4f}" if abs(value) < 1000 else f"{value:.1f}"


def headline(metrics: dict, task: str) -> Optional[str]:
    """The task's first metric as `name value [lo, hi]`, for a commit message."""
    from tunekit.recipe.schema import DEFAULT_METRICS

    for name in DEFAULT_METRICS.get(task, ()):
        value = metrics.get(name)
        if _is_number(value):
            interval = (metrics.get("intervals") or {}).get(name)
            span = f" [{_fmt(interval[0])}, {_fmt(interval[1])}]" if _is_pair(interval) else ""
            return f"{name} {_fmt(value)}{span}"
    return None


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_pair(interval) -> bool:
    return (isinstance(interval, (list, tuple)) and len(interval) == 2
            and all(isinstance(v, (int, float)) for v in interval))


def _evaluation(facts: CardFacts) -> str:
    metrics = facts.metrics
    if not metrics:
        return "## Evaluation\n\nThis run has no evaluation results (its eval/metrics.json is missing)."
    scores = {k: v for k, v in metrics.items() if _is_number(v) and k not in SKIPPED_METRICS}
    for label, per in (metrics.get("per_class") or {}).items():  # classification: each label's f1
        if isinstance(per, dict) and _is_number(per.get("f1")):
            scores.setdefault(f"f1_{label}", per["f1"])
    intervals = metrics.get("intervals") or {}
    setup = metrics.get("interval") or {}
    split, n = metrics.get("split", "held-out"), metrics.get("n")
    lines = ["## Evaluation", "",
             f"Scored on the `{split}` split{f' ({n} examples)' if n else ''}, held out from training."]
    if any(_is_pair(intervals.get(k)) for k in scores):
        confidence = setup.get("confidence", 0.95)
        method = " ".join(str(setup[k]) for k in ("method", "kind") if setup.get(k)) or "as recorded by tunekit eval"
        how = f"{method}, {setup['resamples']} resamples" if setup.get("resamples") else method
        lines += [f"Intervals are {confidence:.0%} confidence intervals ({how}).", "",
                  f"| metric | value | {confidence:.0%} interval |", "| --- | ---: | --- |"]
        for name, value in scores.items():
            span = intervals.get(name)
            lines.append(f"| {name} | {_fmt(value)} | "
                         f"{f'{_fmt(span[0])} – {_fmt(span[1])}' if _is_pair(span) else '–'} |")
    else:
        lines += ["", "| metric | value |", "| --- | ---: |"]
        lines += [f"| {name} | {_fmt(value)} |" for name, value in scores.items()]
    return "\n".join(lines)


def _source_name(ref: str) -> str:
    """How a data reference is shown: pkg:// and non-path references as written, a local path
    by its file name (a card is public; the folders of the machine that trained are not)."""
    if "://" in ref:
        return ref
    return Path(ref).name or ref


def _training_data(facts: CardFacts) -> str:
    sources = facts.manifest.get("data") or {}
    prints = facts.manifest.get("fingerprints") or {}
    if not sources and not prints:
        return ""
    lines = ["## Training data", ""]
    if sources:
        lines += ["| split | source | sha256 |", "| --- | --- | --- |"]
        for split, src in sources.items():
            src = src if isinstance(src, dict) else {"ref": str(src)}
            for item in src.get("files") or [src]:  # several files (a glob, a list, a mixture): one row each
                weight = f" (weight {item['weight']:g})" if item.get("weight") is not None else ""
                lines.append(f"| {split} | `{_source_name(str(item.get('ref', '')))}`{weight} | `{item.get('sha256', '–')}` |")
        lines.append("")
        lines.append("The sha256 identifies the exact file contents used; compare it to check a copy of the data.")
    if prints:
        lines += ["", "tunekit data fingerprints (prepared and tokenized data, with the settings that made them): "
                  + ", ".join(f"{step} `{value}`" for step, value in prints.items()) + "."]
    return "\n".join(lines)


def _intended_use(facts: CardFacts) -> str:
    labels = f" ({', '.join(facts.label_names)})" if facts.label_names else ""
    text = INTENDED_USE.get(facts.task, "The task it was fine-tuned for, on data like its training data.")
    return "## Intended use\n\n" + text.format(labels=labels)


def _limitations(facts: CardFacts) -> str:
    n = (facts.metrics or {}).get("n")
    items = [
        "It learned from the data listed above only: expect lower quality on text that differs from it "
        "(another domain, language, length or style).",
        "Its scores come from a held-out part of the same data, not from an independent benchmark"
        + (f"; with {n} examples scored they are rough estimates." if isinstance(n, int) and n < 1000 else "."),
        "It inherits the biases and errors of its base model and of its training data, and it has not "
        "been audited for fairness or safety: review it before using it for decisions about people.",
        "No license is declared here: its terms follow from the licenses of its base model and its data.",
    ]
    if facts.task in ("summarization", "translation", "causal_lm"):
        items.insert(2, "Generated text can be fluent and wrong: check facts before relying on them.")
    return "## Limitations\n\n" + "\n".join(f"- {item}" for item in items)


def _how_to_use(facts: CardFacts) -> str:
    ref, auto = facts.load_ref, AUTO_CLASSES.get(facts.task, "AutoModel")
    if facts.weights == "adapter":
        base = facts.base_model_id or "BASE_MODEL"
        where = "" if facts.base_model_id else \
            f"  # the base model: {_source_name(facts.base_model or '')} at training time"
        code = (f"from peft import PeftModel\nfrom transformers import AutoConfig, AutoTokenizer, {auto}\n\n"
                f"config = AutoConfig.from_pretrained(\"{ref}\")  # this model's labels and settings\n"
                f"base = {auto}.from_pretrained(\"{base}\", config=config, ignore_mismatched_sizes=True){where}\n"
                f"model = PeftModel.from_pretrained(base, \"{ref}\")\n"
                f"tokenizer = AutoTokenizer.from_pretrained(\"{ref}\")")
        intro = ("With transformers and peft (the adapter needs its base model; its adapter_config.json "
                 "records where the base was at training time):")
    elif facts.task in ("summarization", "translation"):
        code = (f"from transformers import AutoModelForSeq2SeqLM, AutoTokenizer\n\n"
                f"tokenizer = AutoTokenizer.from_pretrained(\"{ref}\")\n"
                f"model = AutoModelForSeq2SeqLM.from_pretrained(\"{ref}\")\n"
                "ids = model.generate(**tokenizer([\"Your text here.\"], return_tensors=\"pt\"), max_new_tokens=128)\n"
                "print(tokenizer.batch_decode(ids, skip_special_tokens=True))")
        intro = "With transformers:"
    else:
        example = {"qa": "question=\"Your question?\", context=\"The passage that holds the answer.\"",
                   "causal_lm": "\"Your prompt here\", max_new_tokens=64"}.get(facts.task, "\"Your text here.\"")
        code = (f"from transformers import pipeline\n\n"
                f"pipe = pipeline(\"{PIPELINE_TAGS.get(facts.task, facts.task)}\", model=\"{ref}\")\n"
                f"print(pipe({example}))")
        intro = "With transformers:"
    folder = facts.repo_id.split("/")[-1] if facts.repo_id else ref
    shell = ((f"hf download {facts.repo_id} --local-dir {folder}\n" if facts.repo_id else "")
             + f"tunekit predict {folder} {_PREDICT_ARGS.get(facts.task, _TEXT_ARG)}"
             + "   # task and input settings come from its tunekit.json")
    return (f"## How to use\n\n{intro}\n\n```python\n{code}\n```\n\n"
            f"With tunekit (see `tunekit predict --help` for the input options):\n\n```bash\n{shell}\n```")


_TEXT_ARG = '"Your text here."'
_PREDICT_ARGS = {"qa": '--question "Who wrote it?" --context "It was written by Ada."',
                 "causal_lm": '"Write a haiku about rain."'}


def _recipe(facts: CardFacts) -> str:
    if not facts.recipe_yaml:
        return ""
    longest = max((len(m) for m in re.findall(r"`+", facts.recipe_yaml)), default=0)
    fence = "`" * max(3, longest + 1)  # a fence the recipe text cannot close early
    return ("## Training recipe\n\nThe resolved recipe (every default filled in) this model was trained "
            "with; `tunekit finetune` on it, with the same data, trains it again. Local files and folders "
            "are shown by their names (`./NAME`): put yours in their place.\n\n"
            f"{fence}yaml\n{facts.recipe_yaml.rstrip()}\n{fence}")
