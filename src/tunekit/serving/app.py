"""The HTTP app of `tunekit serve`: GET /health, GET /info, POST /predict (FastAPI).

POST /predict takes one input object (the task's fields, see serving.inputs) and answers
{"prediction": {...}}, or takes {"inputs": [obj, ...]} and answers {"predictions": [...]}
in the same order. Status codes: 400 for a body that is not a JSON object, 413 for a body over
limits.max_body_bytes (checked on Content-Length and again while the body is read, so a
chunked upload cannot slip past), 422 for wrong, missing or too long fields and too many
inputs (the detail lists each problem with its location, as FastAPI does), and 422 with
{"detail": {"message", "hint"}} when the task itself refuses an input (a QA question that
leaves no room for the context). 400 and 413 answer {"detail": "..."}, most with a "hint".

The endpoint is a plain `def`: FastAPI runs it in its threadpool, so the event loop (and
/health) keeps answering while a prediction runs.
"""

from __future__ import annotations

from typing import Any

from tunekit.errors import TunekitError
from tunekit.serving.inputs import GENERATIVE, as_plain, batch_model, input_model
from tunekit.serving.predictor import Limits, Predictor


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
    from fastapi import Body, FastAPI, HTTPException
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from pydantic import ValidationError

    from tunekit import __version__

    task, style = predictor.task, predictor.style
    cap = (limits.max_new_tokens or predictor.max_new_tokens) if task in GENERATIVE else None
    single = input_model(task, style, limits.max_chars, cap, True)
    batch = batch_model(task, style, limits.max_chars, cap, limits.max_batch)
    request_schema, components = _request_schema(single, batch)

    app = FastAPI(title=f"tunekit: {predictor.info.recipe_name or task}", version=__version__,
                  description=f"A {task} model served by tunekit ({predictor.info.model_dir}).")

    @app.exception_handler(RequestValidationError)
    async def _bad_json(request, exc: RequestValidationError):
        # the only parameter is the raw JSON body: its one failure mode is a body that is not JSON
        errors = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errors):
            return JSONResponse({"detail": "the request body is not valid JSON",
                                 "hint": 'send one input object or {"inputs": [...]}'}, status_code=400)
        return JSONResponse({"detail": _jsonable(errors, ())}, status_code=422)

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
                                                         "content": {"application/json": {"schema": request_schema}}}})
    def predict(payload: Any = Body(None)) -> dict:
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
            predictions = predictor.predict(items)
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
    return app


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
