"""The FastAPI application: the web page and the HTTP API (OpenAPI at ``/openapi.json``, docs at ``/docs``).

================================  =========================================================================
``GET /``                         the page: drop images, choose method / budget / surrogate, see the results
``POST /v1/protect``              multipart: ``image`` (the file), ``method``, ``eps`` (``16/255``), ``steps``,
                                  ``model``, ``preview``, ``wait``; 200 with the PNG when done within ``wait``
                                  seconds, else 202 with ``{"id", "status", "progress", "status_url"}``
``GET /v1/jobs/{id}``             ``status`` (queued / running / done / failed), ``progress``, figures,
                                  ``result_url`` once done
``GET /v1/jobs/{id}/{file}.png``  ``result`` (protected PNG, provenance kept), ``diff``, preview images
``GET /v1/zip?ids=a,b``           a zip of several protected PNGs
``GET /v1/methods``               the registered protections, the offered surrogates, the defaults
``GET /healthz``                  liveness, queue and worker figures
================================  =========================================================================

Every refusal is a 4xx with ``{"detail": "<one line>"}``: 400 bad image / malformed form, 404 unknown job,
413 too large (bytes or pixels), 415 not an image / not multipart, 422 bad parameter, 429 queue full.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
import zipfile
from contextlib import asynccontextmanager
from importlib.resources import files as package_files
from typing import Any

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.formparsers import MultiPartException, MultiPartParser

from latentguard import __version__
from latentguard.core.units import parse_budget
from latentguard.protect import available as available_methods
from latentguard.protect import get_class
from latentguard.serve.config import ServeConfig, _registry
from latentguard.serve.jobs import Job, WorkerPool, valid_id
from latentguard.serve.limits import RequestError, load_upload, needs_pipeline, parse_params, parse_wait

_HERE = package_files("latentguard.serve")
# Multipart overhead allowed on top of the image bytes (boundaries, headers, the small form fields).
_FORM_SLACK = 64 * 1024
_PREVIEW_FILES = ("crop_clean", "crop_protected", "recon_clean", "recon_protected", "edit_clean", "edit_protected")
_FILES = ("result", "diff") + _PREVIEW_FILES

_PROTECT_BODY = {
    "required": True,
    "content": {"multipart/form-data": {"schema": {
        "type": "object", "required": ["image"],
        "properties": {
            "image": {"type": "string", "format": "binary", "description": "PNG, JPEG, WebP, TIFF or BMP (sniffed)"},
            "method": {"type": "string", "description": "a name from GET /v1/methods (default: the server's)"},
            "eps": {"type": "string", "description": "L-inf budget in [0,1] pixel units, e.g. 16/255 or 0.0627"},
            "steps": {"type": "integer", "description": "optimisation steps (0..max_steps)"},
            "model": {"type": "string", "description": "surrogate VAE, one of GET /v1/methods' models"},
            "preview": {"type": "boolean", "description": "also run the editor on the clean and protected crop"},
            "wait": {"type": "number", "description": "seconds to wait for the PNG before answering 202"},
        }}}},
}


def _one_line(text: Any) -> str:
    return " ".join(str(text).split())


def _doc_line(cls: type) -> str:
    doc = (cls.__doc__ or "").strip().splitlines()
    return doc[0].strip().replace("``", "").replace(":math:", "") if doc else ""


def surrogate_note(model: str, editor: str) -> str:
    """What a perturbation optimised on ``model`` protects against, in one sentence or two."""
    note = f"Optimised against the surrogate VAE {model}"
    if model.startswith("zoo:"):
        try:
            note += f" ({_registry.get_entry(model).summary})"
        except ValueError:
            pass
    note += (". It protects best against editors that encode images with this VAE or one like it; "
             f"the preview's editor is {editor}")
    if editor.startswith("zoo:"):
        try:
            entry = _registry.get_entry(editor)
            vae = f"zoo:{entry.vae}" if entry.vae else editor
            note += f", whose VAE is {vae}" + (" (the same: white-box)" if vae == model else " (another VAE: transfer)")
        except ValueError:
            pass
    return note + ". Transfer to other models (e.g. Stable Diffusion's VAE) is not guaranteed; measure it."


def methods_info(config: ServeConfig) -> dict[str, Any]:
    out = []
    for name in available_methods():
        cls = get_class(name)
        out.append({"name": name, "summary": _doc_line(cls), "default": name == config.default_method,
                    "surrogate": "editor pipeline" if needs_pipeline(name) else "VAE"})
    return {"methods": out, "default_method": config.default_method, "models": list(config.models),
            "default_model": config.models[0], "editor": config.editor,
            "defaults": {"eps": config.default_eps, "eps_255": max(1, round(parse_budget(config.default_eps)[0] * 255)),
                         "steps": config.default_steps},
            "limits": {"max_eps_255": round(config.max_eps * 255, 3), "max_steps": config.max_steps,
                       "max_upload_bytes": config.max_upload_bytes, "max_pixels": config.max_pixels,
                       "queue_size": config.queue_size, "sync_wait_s": config.sync_wait_s},
            "notes": {m: surrogate_note(m, config.editor) for m in config.models}}


def job_json(job: Job, request: Request | None = None) -> dict[str, Any]:
    base = f"/v1/jobs/{job.id}"
    d: dict[str, Any] = {
        "id": job.id, "status": job.status, "stage": job.stage, "progress": round(job.progress(), 3),
        "steps_done": job.steps_done, "steps": job.steps_total,
        "eta_s": None if job.eta_s is None or job.stage != "protecting" else round(job.eta_s, 1),
        "name": job.result_name, "params": job.params.to_dict(),
        "created": job.created, "started": job.started, "finished": job.finished,
        "status_url": base, "result_url": None, "error": job.error,
    }
    if job.status == "done":
        d["result_url"] = f"{base}/result.png"
        d["figures"] = job.figures
        d["files"] = {k: f"{base}/{k}.png" for k in _FILES if k in job.files}
    return d


async def _read_body(request: Request, cap: int) -> bytes:
    """The request body, refused with 413 as soon as it passes ``cap`` bytes (never buffered past it)."""
    length = request.headers.get("content-length")
    if length is not None:
        try:
            n = int(length)
        except ValueError:
            raise RequestError(400, "invalid Content-Length header") from None
        if n > cap:
            raise RequestError(413, f"upload of {n} bytes exceeds the limit of {cap} bytes")
    chunks, n = [], 0
    async for chunk in request.stream():
        n += len(chunk)
        if n > cap:
            raise RequestError(413, f"upload exceeds the limit of {cap} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def _parse_form(request: Request, body: bytes, cap: int) -> tuple[dict[str, str], bytes | None, str | None]:
    ctype = request.headers.get("content-type", "")
    if not ctype.lower().startswith("multipart/form-data"):
        raise RequestError(415, "expected multipart/form-data with the image in field 'image'")

    async def stream():
        yield body

    parser = MultiPartParser(request.headers, stream(), max_files=1, max_fields=16, max_part_size=_FORM_SLACK)
    parser.spool_max_size = cap + 1  # the file stays in memory: nothing is written outside the data folder
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        raise RequestError(400, f"malformed form: {exc}") from None
    fields: dict[str, str] = {}
    data = filename = None
    try:
        for key, value in form.multi_items():
            if isinstance(value, str):
                if key in fields:
                    raise RequestError(422, f"{key}: given more than once")
                fields[key] = value
            elif key == "image":
                data, filename = await value.read(), value.filename
            else:
                raise RequestError(422, f"{key}: a file was given where a value is expected (the file goes in 'image')")
    finally:
        await form.close()
    if data is None:
        if "image" in fields:
            raise RequestError(422, "image: expected a file upload, got a text value")
        raise RequestError(422, "image: missing (send the file in the multipart field 'image')")
    fields.pop("image", None)
    return fields, data, filename


def create_app(config: ServeConfig | None = None, *, pool: WorkerPool | None = None) -> FastAPI:
    """The application; its lifespan starts and stops the worker pool (``app.state.pool``)."""
    config = config or ServeConfig()
    pool = pool or WorkerPool(config)
    cap = int(config.max_upload_bytes) + _FORM_SLACK
    env = Environment(loader=FileSystemLoader(str(_HERE / "templates")), autoescape=select_autoescape(["html"]))

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        pool.start()
        try:
            yield
        finally:
            pool.stop()

    app = FastAPI(
        title="latentguard", version=__version__, lifespan=lifespan,
        description="Protect images against editing by latent diffusion models. Budgets in [0,1] pixel units "
                    "(16/255). Errors: 4xx with {\"detail\": one line}.",
    )
    app.state.pool = pool
    app.state.config = config
    app.mount("/static", StaticFiles(directory=str(_HERE / "static")), name="static")

    @app.exception_handler(RequestError)
    async def _request_error(request: Request, exc: RequestError):
        headers = {"Retry-After": "5"} if exc.status == 429 else None
        return JSONResponse({"detail": exc.reason}, status_code=exc.status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError):
        errs = exc.errors()
        first = errs[0] if errs else {}
        where = ".".join(str(p) for p in first.get("loc", ())[1:]) or "request"
        return JSONResponse({"detail": _one_line(f"{where}: {first.get('msg', 'invalid')}")}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        return JSONResponse({"detail": _one_line(exc.detail)}, status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> HTMLResponse:
        info = methods_info(config)
        html = env.get_template("index.html").render(info=info, info_json=json.dumps(info), version=__version__)
        return HTMLResponse(html)

    @app.get("/healthz", summary="Liveness and load")
    async def healthz() -> dict[str, Any]:
        return {"status": "ok", "version": __version__, "workers": config.workers,
                "queue": {"queued": pool.queued(), "max": config.queue_size}, "jobs": pool.counts(),
                "completed": pool.completed, "failed": pool.failed}

    @app.get("/v1/methods", summary="Protections, surrogates and defaults")
    async def methods() -> dict[str, Any]:
        return methods_info(config)

    @app.post("/v1/protect", summary="Protect one image", openapi_extra={"requestBody": _PROTECT_BODY},
              responses={200: {"content": {"image/png": {}}, "description": "the protected PNG (finished in time)"},
                         202: {"description": "accepted: poll status_url"}, 400: {"description": "bad image or form"},
                         413: {"description": "too many bytes or pixels"}, 415: {"description": "not an image"},
                         422: {"description": "bad parameter"}, 429: {"description": "queue full"}})
    async def protect(request: Request) -> Response:
        body = await _read_body(request, cap)
        fields, data, filename = await _parse_form(request, body, cap)
        del body
        wait = parse_wait(fields.pop("wait", None), config=config)
        params = parse_params(fields, config=config)
        if len(data) > config.max_upload_bytes:
            raise RequestError(413, f"image of {len(data)} bytes exceeds the limit of {config.max_upload_bytes} bytes")
        job = pool.new_job(params, filename)
        try:
            img, path = await asyncio.to_thread(load_upload, data, job.folder, max_pixels=config.max_pixels)
            size = (int(img.shape[-1]), int(img.shape[-2]))
            del img
            pool.submit(job, path, size)
        except BaseException:
            pool.discard(job)
            raise
        if wait <= 0:  # the page's way: never the PNG, always the job to poll
            return JSONResponse(job_json(job), status_code=202, headers={"Location": f"/v1/jobs/{job.id}"})
        deadline = time.monotonic() + wait
        while not job.done.is_set() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if job.status == "done":
            return FileResponse(job.files["result"], media_type="image/png", filename=job.result_name,
                                headers={"X-Job-Id": job.id, "X-Linf": f"{job.figures['linf']:.6f}"})
        if job.status == "failed":
            # Bad input never gets here (it is refused before queueing): a failed job is the server's fault.
            return JSONResponse({"detail": job.error, **job_json(job)}, status_code=job.error_status)
        return JSONResponse(job_json(job), status_code=202, headers={"Location": f"/v1/jobs/{job.id}"})

    def _job(job_id: str) -> Job:
        job = pool.get(job_id) if valid_id(job_id) else None
        if job is None:
            raise RequestError(404, f"no job {job_id!r} (unknown, or cleaned up after {config.ttl_s:g} s)")
        return job

    @app.get("/v1/jobs/{job_id}", summary="A job's status, progress and figures")
    async def job_status(job_id: str) -> dict[str, Any]:
        return job_json(_job(job_id))

    @app.get("/v1/jobs/{job_id}/{name}.png", summary="A job's image: result, diff or a preview")
    async def job_file(job_id: str, name: str, download: bool = False) -> FileResponse:
        job = _job(job_id)
        if name not in _FILES:
            raise RequestError(404, f"no file {name!r}; files: {', '.join(_FILES)}")
        if job.status != "done":
            raise RequestError(409, f"job {job_id} is {job.status}, not done")
        path = job.files.get(name)
        if path is None or not path.exists():
            raise RequestError(404, f"job {job_id} has no {name!r} (preview not requested?)")
        fname = job.result_name if name == "result" else f"{job.stem}-{name}.png"
        disposition = "attachment" if (download or name == "result") else "inline"
        return FileResponse(path, media_type="image/png", filename=fname, content_disposition_type=disposition)

    @app.get("/v1/zip", summary="A zip of several jobs' protected PNGs")
    async def zip_results(ids: str = Query(..., description="comma-separated job ids")) -> FileResponse:
        wanted = [i for i in (s.strip() for s in ids.split(",")) if i]
        if not wanted:
            raise RequestError(422, "ids: give at least one job id")
        if len(wanted) > 1000:
            raise RequestError(422, "ids: at most 1000 jobs per zip")
        jobs = [_job(i) for i in dict.fromkeys(wanted)]
        not_done = [j.id for j in jobs if j.status != "done"]
        if not_done:
            raise RequestError(409, f"not done: {', '.join(not_done)}")
        zdir = pool.root / "zips"
        zdir.mkdir(parents=True, exist_ok=True)
        zpath = zdir / f"{uuid.uuid4().hex}.zip"

        def build() -> None:
            used: set[str] = set()
            with zipfile.ZipFile(zpath, "w", compression=zipfile.ZIP_STORED) as zf:  # PNGs are compressed already
                for j in jobs:
                    name, k = j.result_name, 1
                    while name in used:
                        name, k = f"{j.stem}-protected-{k}.png", k + 1
                    used.add(name)
                    zf.write(j.files["result"], arcname=name)

        await asyncio.to_thread(build)
        return FileResponse(zpath, media_type="application/zip", filename="latentguard-protected.zip",
                            background=BackgroundTask(zpath.unlink, missing_ok=True))

    return app
