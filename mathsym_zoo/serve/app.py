"""The Starlette app behind ``mathsym-zoo serve``: the draw page and its JSON API.

| route | what |
| --- | --- |
| ``GET /``, ``GET /symbols`` | the page (one HTML file; KaTeX is served from ``/static/katex``) |
| ``GET /api/models`` | ``[{"id", "model", "source", "top1", "classes"}]``, the default model first |
| ``POST /api/predict`` | ``{"strokes", "model"?, "top_k"?}`` -> ``{"model", "predictions": [{"label", "latex", "probability"}], "ms"}`` |
| ``POST /api/samples`` | ``{"strokes", "label"}`` -> ``{"path"}`` (only with a samples folder) |
| ``GET /healthz`` | ``{"status": "ok"}`` |

Errors are JSON ``{"error": message}`` (plus ``"choices"`` for an unknown model
or label): 400 bad JSON, 404 unknown model, 413 body over 256 KiB, 415 not
JSON, 422 invalid strokes or label.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ..labels import LATEX, latex_for
from .models import ModelPool
from .payloads import MAX_BODY_BYTES, PayloadError, PredictBody, SampleBody, parse
from .samples import write_sample

STATIC = Path(__file__).parent / "static"
PAGE_HEADERS = {  # the page loads nothing from elsewhere; this keeps it so
    "Content-Security-Policy": "default-src 'self'; script-src 'self' 'unsafe-inline'; "
                               "style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


class ApiError(Exception):
    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.message, self.extra = status, message, extra


async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
    return JSONResponse({"error": exc.message, **exc.extra}, status_code=exc.status)


async def _read_json_body(request: Request) -> bytes:
    """The body, refusing non-JSON content types (no cross-site form posts) and anything over the limit."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/json":
        raise ApiError(415, f"send the body as JSON with Content-Type: application/json (got {ctype or 'none'!r})")
    too_big = ApiError(413, f"request body over {MAX_BODY_BYTES // 1024} KiB; send fewer points")
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > MAX_BODY_BYTES):
        raise too_big
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise too_big
        chunks.append(chunk)
    return b"".join(chunks)


def _parse(body_type, raw: bytes):
    try:
        return parse(body_type, raw)
    except PayloadError as exc:
        raise ApiError(400 if exc.not_json else 422, str(exc)) from None


def top_k(clf, image: np.ndarray, k: int) -> list[tuple[str, float]]:
    """The k most likely classes of one rendered image, through the run's preprocessing and compiled call."""
    from PIL import Image

    probs = clf.predict_proba(clf.preprocess(Image.fromarray(image)))[0]
    order = np.argsort(-probs, kind="stable")[:k]
    return [(clf.class_names[i], float(probs[i])) for i in order]


def create_app(pool: ModelPool, *, samples_dir: Path | None = None,
               allowed_hosts: Sequence[str] | None = None) -> Starlette:
    """The app serving ``pool``'s models; contributions go to ``samples_dir`` (off when None).

    ``allowed_hosts`` limits the Host header (against DNS rebinding when
    listening on loopback); None accepts any.
    """
    page_template = (STATIC / "index.html").read_text(encoding="utf-8")
    config = json.dumps({"latex": LATEX, "samples": samples_dir is not None}).replace("</", "<\\/")
    page = page_template.replace("{{CONFIG}}", config)

    async def index(request: Request) -> Response:
        return HTMLResponse(page, headers=PAGE_HEADERS)

    async def models(request: Request) -> Response:
        return JSONResponse([e.to_dict() for e in pool.entries.values()])

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    def _entry(model_id: str | None):
        entry = pool.entry(model_id)
        if entry is None:
            raise ApiError(404, f"unknown model {model_id!r}; choose one of {list(pool.entries)} (GET /api/models)",
                           choices=list(pool.entries))
        return entry

    async def predict(request: Request) -> Response:
        body: PredictBody = _parse(PredictBody, await _read_json_body(request))
        entry = _entry(body.model)

        def work():
            start = time.perf_counter()
            clf = pool.classifier(entry.id)
            ranked = top_k(clf, body.image(), body.top_k)
            return ranked, (time.perf_counter() - start) * 1000

        ranked, ms = await run_in_threadpool(work)
        return JSONResponse({"model": entry.id, "ms": round(ms, 3), "predictions": [
            {"label": label, "latex": latex_for(label), "probability": p} for label, p in ranked]})

    async def samples(request: Request) -> Response:
        if samples_dir is None:
            raise ApiError(403, "contributions are off; start the server with --samples DIR to save drawings")
        body: SampleBody = _parse(SampleBody, await _read_json_body(request))
        choices = pool.all_classes()
        if body.label not in choices:
            raise ApiError(422, f"unknown label {body.label!r}; choose one of the models' classes", choices=choices)
        strokes = [[list(p) for p in s] for s in body.strokes]
        path = await run_in_threadpool(write_sample, samples_dir, body.label, strokes, body.image())
        return JSONResponse({"path": path.as_posix()}, status_code=201)

    routes = [
        Route("/", index), Route("/symbols", index),
        Route("/api/models", models), Route("/api/predict", predict, methods=["POST"]),
        Route("/api/samples", samples, methods=["POST"]), Route("/healthz", healthz),
        Mount("/static/katex", StaticFiles(directory=STATIC / "katex"), name="katex"),
    ]
    middleware = [Middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts))] if allowed_hosts else []
    return Starlette(routes=routes, middleware=middleware, exception_handlers={ApiError: _api_error})
