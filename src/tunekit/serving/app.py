"""The HTTP app of `tunekit serve`: GET /health, GET /info, POST /predict (FastAPI).

POST /predict takes one input object (the task's fields, see serving.inputs) and answers
{"prediction": {...}}, or takes {"inputs": [obj, ...]} and answers {"predictions": [...]}
in the same order.

Every error answers JSON, {"detail": ..., "hint"?: "what to do"}:
  400  a body that is not a JSON object
  404, 405  an unknown path, or a method the path does not take
  413  a body over limits.max_body_bytes (checked on Content-Length and again while the body is
       read, so a chunked upload cannot slip past)
  422  wrong, missing or too long fields, too many inputs (detail: a list of {loc, msg, type},
       as FastAPI does), or {"detail": {"message", "hint"}} when the task itself refuses an
       input (a QA question that leaves no room for the context)
  503  limits.max_queue predictions already waiting or running (with Retry-After)
  504  the prediction took longer than limits.timeout seconds (waiting included)
  500  anything unexpected: a fixed message; the traceback goes to the server's log only.

Nothing a client sees names a folder of the server: /info, the OpenAPI document (/docs) and
error texts show the model's name (predictor.model_name), never its path.

Predictions run on one worker thread (predictor.PredictionQueue): the endpoint awaits them, so
the event loop (and /health) keeps answering meanwhile. A prediction past its deadline cannot
be interrupted: the request answers 504 at once, the computation finishes unseen and only then
frees its queue slot (a job still waiting when its deadline passes is dropped and never runs).
"""

from __future__ import annotations

import asyncio
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

from tunekit.errors import TunekitError
from tunekit.serving.inputs import GENERATIVE, as_plain, batch_model, input_model
from tunekit.serving.predictor import Limits, PredictionQueue, Predictor, QueueFull, model_name

ENDPOINTS = "GET /health, GET /info, POST /predict; the API is described at /docs"
RETRY_AFTER_S = 1


class BodyLimit:
    """ASGI middleware: 413 for a request body over `max_bytes`. A declared Content-Length is
    checked before anything is read; the body is then read (counting) and replayed to the app."""

    def __init__(self, app, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None:
            if not declared.strip().isdigit():
                return await _plain_error(400, "invalid Content-Length header", scope, receive, send)
            if int(declared) > self.max_bytes:
                return await self._too_large(scope, receive, send)
        chunks, total = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunk = message.get("body", b"")
            total += len(chunk)
            if total > self.max_bytes:
                return await self._too_large(scope, receive, send)
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # later calls: wait for the disconnect as usual

        await self.app(scope, replay, send)

    async def _too_large(self, scope, receive, send):
        await _plain_error(413, f"the request body is larger than the server's limit of {self.max_bytes} bytes",
                           scope, receive, send, hint="send fewer inputs per request, or restart the server "
                           "with a larger --max-body-bytes")


async def _plain_error(status: int, detail: str, scope, receive, send, hint: str = "") -> None:
    from starlette.responses import JSONResponse

    body = {"detail": detail, **({"hint": hint} if hint else {})}
    # Connection: close, since the unread rest of an oversized body must not be taken for a new request
    await JSONResponse(body, status_code=status, headers={"Connection": "close"})(scope, receive, send)


def create_app(predictor: Predictor, limits: Limits = Limits()):
    """The FastAPI app around a loaded predictor."""
    from contextlib import asynccontextmanager

    from fastapi import Body, FastAPI, HTTPException
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from pydantic import ValidationError
    from starlette.exceptions import HTTPException as StarletteHTTPException

    from tunekit import __version__

    task, style = predictor.task, predictor.style
    cap = (limits.max_new_tokens or predictor.max_new_tokens) if task in GENERATIVE else None
    single = input_model(task, style, limits.max_chars, cap, True)
    batch = batch_model(task, style, limits.max_chars, cap, limits.max_batch)
    request_schema, components = _request_schema(single, batch)
    name = model_name(predictor.info)
    scrub = _scrubber(predictor, name)
    jobs = PredictionQueue(limits.max_queue)

    @asynccontextmanager
    async def lifespan(_app):
        yield
        jobs.close()

    app = FastAPI(title=f"tunekit: {name}", version=__version__, lifespan=lifespan,
                  description=f"A {task} model{f' ({name})' if name != task else ''} served by tunekit.",
                  responses={500: _documented("An unexpected failure (the server's log has the details).")})

    def error(status: int, detail: Any, hint: str = "", headers: dict | None = None):
        body = {"detail": scrub(detail), **({"hint": scrub(hint)} if hint else {})}
        return JSONResponse(body, status_code=status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _bad_json(request, exc: RequestValidationError):
        # the only parameter is the raw JSON body: its one failure mode is a body that is not JSON
        errors = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errors):
            return error(400, "the request body is not valid JSON", 'send one input object or {"inputs": [...]}')
        return error(422, _jsonable(errors, ()))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request, exc: StarletteHTTPException):
        hint = f"this server answers {ENDPOINTS}" if exc.status_code in (404, 405) else ""
        return error(exc.status_code, exc.detail, hint, headers=exc.headers)

    @app.exception_handler(Exception)
    async def _unexpected(request, exc: Exception):
        # a fixed text: an exception's own may name files; the traceback goes to the server's log
        return error(500, "the server failed unexpectedly while answering this request",
                     "the server's log has the details; retry, and report it if it persists")

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok", "model_loaded": predictor.model is not None, "task": task}

    default_new = min(predictor.max_new_tokens or cap, cap) if cap else None  # what a request gets unasked

    @app.get("/info")
    def info() -> dict:
        described = predictor.describe()
        if "generation" in described:
            described["generation"]["max_new_tokens"] = default_new
        return {**described, "limits": {**limits.as_dict(), "max_new_tokens": cap}, "tunekit": __version__}

    @app.post("/predict", openapi_extra={"requestBody": {"required": True,
                                                         "content": {"application/json": {"schema": request_schema}}}},
              responses={400: _documented("The body is not a JSON object."),
                         413: _documented("The body is larger than the server's limit."),
                         422: _documented("Wrong, missing or too long fields, too many inputs, or an input "
                                          "the task cannot encode."),
                         503: _documented("Too many predictions are waiting or running: retry after a moment.",
                                          retry_after=True),
                         504: _documented("The prediction took longer than the server's timeout.")})
    async def predict(payload: Any = Body(None)) -> dict:
        if not isinstance(payload, dict):
            kind = "nothing" if payload is None else type(payload).__name__
            fields = ", ".join(f'"{f}": ...' for f in predictor.input_fields)
            raise HTTPException(400, f"the request body must be a JSON object, not {kind}: one input "
                                f"{{{fields}}} or {{\"inputs\": [...]}}")
        is_batch = "inputs" in payload
        try:
            parsed = batch.model_validate(payload) if is_batch else single.model_validate(payload)
        except ValidationError as exc:
            raise HTTPException(422, _jsonable(exc.errors(include_url=False), ("body",))) from None
        items = [as_plain(x) for x in parsed.inputs] if is_batch else [as_plain(parsed)]
        if default_new is not None:  # generative: the default length, never above the cap
            for item in items:
                item.setdefault("max_new_tokens", default_new)
        try:
            job = jobs.submit(predictor.predict, items)
        except QueueFull:
            return error(503, f"the server is busy: {limits.max_queue} predictions are already waiting or running",
                         "retry in a few seconds (Retry-After), or send fewer concurrent requests",
                         headers={"Retry-After": str(RETRY_AFTER_S)})
        waiter = asyncio.wrap_future(job)
        try:
            done, _ = await asyncio.wait({waiter}, timeout=limits.timeout)
        finally:
            if not waiter.done():
                waiter.cancel()  # also cancels the job if it has not started; a running one ends unseen
        if not done:
            return error(504, f"the prediction took longer than the server's limit of {limits.timeout:g} s",
                         "send fewer or shorter inputs per request" + (", or ask for fewer max_new_tokens"
                                                                       if cap else "")
                         + "; the server's --timeout sets the limit")
        try:
            predictions = waiter.result()
        except TunekitError as exc:  # the task refused an input it cannot encode
            raise HTTPException(422, {"message": exc.message, "hint": exc.hint}) from None
        return {"predictions": predictions} if is_batch else {"prediction": predictions[0]}

    plain_openapi = app.openapi

    def openapi() -> dict:  # the request models' parts, where the request schema's refs point
        doc = plain_openapi()
        doc.setdefault("components", {}).setdefault("schemas", {}).update(components)
        return doc

    app.openapi = openapi  # type: ignore[method-assign]
    app.add_middleware(BodyLimit, max_bytes=limits.max_body_bytes)
    app.state.jobs = jobs
    return app


def _documented(description: str, retry_after: bool = False) -> dict:
    """An error response for the OpenAPI document: the JSON error body (and Retry-After)."""
    out: dict = {"description": description, "model": _error_body()}
    if retry_after:
        out["headers"] = {"Retry-After": {"description": "Seconds to wait before retrying.",
                                          "schema": {"type": "integer"}}}
    return out


@lru_cache(maxsize=1)
def _error_body():
    """The pydantic model of every error answer (documentation only)."""
    from typing import Union

    from pydantic import BaseModel, Field

    class FieldProblem(BaseModel):
        loc: list[Union[str, int]]
        msg: str
        type: str

    class TaskRefusal(BaseModel):
        message: str
        hint: str

    class ErrorBody(BaseModel):
        detail: Union[str, list[FieldProblem], TaskRefusal] = Field(description="What is wrong.")
        hint: str = Field("", description="What to do about it (most errors).")

    return ErrorBody


def _scrubber(predictor: Predictor, name: str) -> Callable[[Any], Any]:
    """A function that replaces the server's model, run and base folders in error texts by the
    model's name, and the home folder by ~ (an error a library raises may quote a path)."""
    info = predictor.info
    places = [info.model_dir] + ([info.run.root] if info.run is not None else [])
    if info.base_model and "://" not in info.base_model and Path(info.base_model).expanduser().exists():
        places.append(Path(info.base_model).expanduser())
    swaps = {}
    for place in places:
        for form in (str(place), str(Path(place).resolve())):
            if len(form) > 1 and form != ".":
                swaps[form] = name
    home = str(Path.home())
    if len(home) > 1:
        swaps.setdefault(home, "~")
    ordered = sorted(swaps.items(), key=lambda kv: -len(kv[0]))  # the longest (most specific) first

    def scrub(value: Any) -> Any:
        if isinstance(value, str):
            for old, new in ordered:
                value = value.replace(old, new)
            return value
        if isinstance(value, list):
            return [scrub(v) for v in value]
        if isinstance(value, dict):
            return {k: scrub(v) for k, v in value.items()}
        return value

    return scrub


def _request_schema(single, batch) -> tuple[dict, dict]:
    """The /predict body's JSON schema (one input or a batch) for the OpenAPI document, and the
    component schemas its $refs name. The endpoint itself takes the raw JSON (see predict)."""
    from typing import Union

    from pydantic import TypeAdapter

    schema = TypeAdapter(Union[single, batch]).json_schema(ref_template="#/components/schemas/{model}")
    return schema, schema.pop("$defs", {})


def _jsonable(errors: list, prefix: tuple) -> list:
    """Pydantic errors as {loc, msg, type}: the offending input value is left out (it may be
    large, or not JSON-safe), the location says where it is."""
    return [{"loc": [*prefix, *e.get("loc", ())], "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in errors]
