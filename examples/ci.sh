#!/usr/bin/env bash
# A CI job for a model: train the recipe, gate it, export it to ONNX, publish it.
# The exit code is the verdict: 0 shipped, 2 bad input, 3 a quality gate failed (nothing is
# exported or pushed then). The JUnit file lets the CI system show each gate as a test.
#
#   REPO=you/sentiment-minilm examples/ci.sh
#
# Settings (environment):
#   RECIPE        the recipe to train                (default recipes/sentiment.yaml)
#   RUN           its run directory                  (default runs/ci-sentiment)
#   REPO          OWNER/NAME to push to              (required; HF_TOKEN holds the token,
#                                                     HF_ENDPOINT the Hub when not the public one)
#   MIN_ACCURACY  the accuracy gate                  (default 0.80)
#   BASELINE      an earlier metrics.json to compare (optional; gate: at most MAX_DROP worse)
#   MAX_DROP      allowed drop of f1_macro vs BASELINE (default 0.02)
#   TUNEKIT_SET   extra --set overrides, space separated (e.g. "train.max_steps=20")
#   REPORTS       where the JUnit XML goes           (default reports)
set -euo pipefail

RECIPE=${RECIPE:-recipes/sentiment.yaml}
RUN=${RUN:-runs/ci-sentiment}
REPO=${REPO:?set REPO=OWNER/NAME}
MIN_ACCURACY=${MIN_ACCURACY:-0.80}
MAX_DROP=${MAX_DROP:-0.02}
REPORTS=${REPORTS:-reports}
TUNEKIT=${TUNEKIT:-tunekit}

sets=(--set "output_dir=$RUN")
for item in ${TUNEKIT_SET:-}; do sets+=(--set "$item"); done

echo "== train"
"$TUNEKIT" finetune "$RECIPE" "${sets[@]}" --overwrite

echo "== gate"
gates=(--min "accuracy=$MIN_ACCURACY")
if [ -n "${BASELINE:-}" ]; then gates+=(--baseline "$BASELINE" --max-drop "f1_macro=$MAX_DROP"); fi
"$TUNEKIT" eval "$RUN" "${gates[@]}" --junit "$REPORTS/gates.xml"

echo "== export"
"$TUNEKIT" export "$RUN" --format onnx --overwrite

echo "== push"
"$TUNEKIT" push "$RUN" --repo "$REPO" --message "CI: $(basename "$RUN") passed its gates"
