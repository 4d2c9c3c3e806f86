from __future__ import annotations

from typing import Optional

import typer

from tunekit.cli.common import quiet_libraries, report_errors
from tunekit.console import console
from tunekit.errors import TunekitError

LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")


@report_errors
def serve(
    run: str = typer.Argument(..., metavar="RUN",
                              help="Run directory written by `tunekit finetune`, or a model folder."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (0.0.0.0: every interface)."),
    port: int = typer.Option(8000, "--port", min=0, max=65535, help="Port to listen on."),
    max_chars: int = typer.Option(20_000, "--max-chars", min=1, help="Most characters per text field of an input."),
    max_batch: int = typer.Option(64, "--max-batch", min=1, help="Most inputs per request."),
    max_body_bytes: int = typer.Option(1_048_576, "--max-body-bytes", min=1,
                                       help="Largest request body; bigger ones get 413."),
    max_new_tokens: Optional[int] = typer.Option(None, "--max-new-tokens", min=1,
                                                 help="Generative tasks: the most tokens a request may ask for "
                                                 "(default: the run's eval.generation.max_new_tokens)."),
    timeout: float = typer.Option(60.0, "--timeout", metavar="SECONDS",
                                  help="Most seconds one request may wait and predict; slower ones get 504."),
    max_queue: int = typer.Option(64, "--max-queue", min=1, help="Most predictions waiting or running at once; "
                                  "requests beyond get 503 (Retry-After)."),
    log_level: str = typer.Option("info", "--log-level", help="uvicorn's log level (warning: no access log)."),
) -> None:
    """Serve a trained model over HTTP: GET /health, GET /info, POST /predict (docs at /docs).

    Errors answer JSON; clients see the model's name, never its folder."""
    from tunekit.model_info import find_model
    from tunekit.serving.inputs import GENERATIVE

    if log_level.lower() not in LOG_LEVELS:
        raise TunekitError(f"unknown --log-level {log_level!r}", f"choose one of: {', '.join(LOG_LEVELS)}")
    if not timeout > 0 or timeout == float("inf"):
        raise TunekitError(f"--timeout must be a positive number of seconds, not {timeout:g}",
                           "e.g. --timeout 60")
    info = find_model(run)
    _check_port(host, port)  # before the model loads: a busy port should not cost a minute
    if info.task in GENERATIVE and not (max_new_tokens or info.eval.generation.max_new_tokens):
        raise TunekitError("this model's recipe sets no eval.generation.max_new_tokens",
                           "pass --max-new-tokens (the most tokens one request may generate)")
    quiet_libraries()
    import uvicorn

    from tunekit.serving.app import create_app
    from tunekit.serving.predictor import Limits, load_predictor

    predictor = load_predictor(info)
    limits = Limits(max_chars=max_chars, max_batch=max_batch, max_body_bytes=max_body_bytes,
                    max_new_tokens=max_new_tokens, timeout=timeout, max_queue=max_queue)
    app = create_app(predictor, limits)
    shown = f"[{host}]" if ":" in host else host
    console.print(f"[green]serving[/] {info.task} model {info.model_dir} (loaded in {predictor.load_seconds:.1f} s "
                  f"on {predictor.device}) at http://{shown}:{port}  -  POST /predict, GET /health, GET /info, "
                  "docs at /docs; Ctrl-C stops", soft_wrap=True)
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level=log_level.lower(),
                                           timeout_graceful_shutdown=10))
    server.run()  # returns after Ctrl-C / SIGTERM (uvicorn re-raises the signal once it has shut down)


def _check_port(host: str, port: int) -> None:
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise TunekitError(f"cannot listen on {host}:{port}: {exc.strerror or exc}",
                               "choose another --port (or --host), or stop what is using it") from None
