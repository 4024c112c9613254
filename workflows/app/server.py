"""The FastAPI application of the web app: a JSON API and one static page (HTML/CSS/JS, no external assets).

Endpoints
---------
``GET /``                                        the page
``GET /api/config``                              limits and defaults the page shows
``POST /api/jobs``                               multipart: ``files`` (one or many) + settings fields → ``{"id"}``
``GET /api/jobs/{id}``                           progress, per-image status/messages/results, batch summary
``POST /api/jobs/{id}/images/{i}/pixel-size``    re-run one image with a pixel size (form ``pixel_size_nm``)
``GET /api/jobs/{id}/images/{i}/{kind}``         ``coords.csv``, ``coords.json``, ``overlay.png``, ``nnd.png``,
                                                 ``envelopes.png``, ``envelopes.json``, ``descriptors.json``,
                                                 ``detection.json``
``GET /api/jobs/{id}/summary.csv``               the batch summary, one row per image
``GET /api/jobs/{id}/results.zip``               everything, with ``settings.json`` and ``summary.csv``
``GET /api/health``                              ``{"ok": true}``

Uploads: at most ``max_files`` files of at most ``max_file_mb`` MB each; a larger file is reported as a problem
of that image (the others are processed), a request larger than all files together could be is refused (413).
"""

from __future__ import annotations

import csv
import logging
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles

from sacmap.core.records import IMAGE_SUFFIXES, RSCIIO_SUFFIXES
from sacmap.workflows.app import pipeline
from sacmap.workflows.app.jobs import DONE, JobManager, summary_csv
from sacmap.workflows.errors import WorkflowInputError

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"
#: image suffixes the page offers (those rosettasciio reads only when it is installed)
ACCEPT = sorted(IMAGE_SUFFIXES)
_FILE_KINDS = {
    "coords.csv": ("csv", "text/csv"),
    "overlay.png": ("overlay", "image/png"),
    "nnd.png": ("nnd", "image/png"),
    "envelopes.png": ("envelopes_png", "image/png"),
    "envelopes.json": ("envelopes", "application/json"),
    "descriptors.json": ("descriptors", "application/json"),
    "detection.json": ("json", "application/json"),
}


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"detail": message}, status_code=status)


def create_app(workdir: str | Path | None = None, *, max_file_mb: float = 64, max_files: int = 32,
               process=None, device: str = "cpu", max_jobs: int = 16) -> FastAPI:
    """Build the app.

    Parameters
    ----------
    workdir : folder for uploads and results (a temporary folder, removed at shutdown, when None).
    max_file_mb : upload limit per file (MB, 2**20 bytes). max_files : files per batch.
    process : per-image function (default :func:`sacmap.workflows.app.pipeline.process_image`).
    device : torch device for detection (``cpu`` or ``cuda``). max_jobs : batches kept in memory and on disk.
    """
    max_bytes = int(max_file_mb * 2**20)
    manager = JobManager(workdir, process=process, max_jobs=max_jobs)

    @asynccontextmanager
    async def lifespan(_app):
        yield
        manager.close()

    app = FastAPI(title="sacmap", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.manager = manager
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/", response_class=HTMLResponse)
    def index() -> HTMLResponse:
        return HTMLResponse((STATIC_DIR / "index.html").read_text(encoding="utf-8"))

    @app.get("/api/health")
    def health() -> dict:
        return {"ok": True}

    @app.get("/api/config")
    def config() -> dict:
        from importlib.util import find_spec

        accept = [s for s in ACCEPT if s not in RSCIIO_SUFFIXES or find_spec("rsciio")]
        return {
            "max_file_mb": max_file_mb, "max_files": max_files, "accept": accept,
            "defaults": pipeline.AppSettings(device=device).to_dict(),
            "version": pipeline.software_versions().get("sacmap"),
        }

    @app.post("/api/jobs")
    async def submit(request: Request):
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > max_files * max_bytes + 2**20:
            return _error(413, f"upload too large: at most {max_files} files of {max_file_mb:g} MB each")
        try:
            form = await request.form(max_files=max_files + 1, max_fields=50)
        except Exception as exc:  # malformed multipart, too many files
            return _error(400, f"could not read the upload ({exc})")
        files = [f for f in form.getlist("files") if hasattr(f, "read")]
        if not files:
            return _error(400, "no files: choose one or more images")
        if len(files) > max_files:
            return _error(400, f"too many files: {len(files)} (at most {max_files} per batch)")
        try:
            settings = pipeline.AppSettings.from_form(
                pixel_size_nm=str(form.get("pixel_size_nm") or ""),
                override_pixel_size=str(form.get("override_pixel_size") or ""),
                threshold=str(form.get("threshold") or ""), elements=str(form.get("elements") or ""),
                multimer_nm=str(form.get("multimer_nm") or ""), device=device,
            )
        except WorkflowInputError as exc:
            return _error(400, str(exc))
        job = manager.new_job(settings)
        for upload in files:
            upload.file.seek(0)
            manager.add_upload(job, upload.filename or "", upload.file, max_bytes)
            await upload.close()
        manager.start(job)
        return {"id": job.id, "n_images": len(job.items)}

    @app.get("/api/jobs/{job_id}")
    def job_status(job_id: str):
        job = manager.get(job_id)
        if job is None:
            return _error(404, f"no such job: {job_id}")
        return job.public()

    @app.post("/api/jobs/{job_id}/images/{index}/pixel-size")
    async def set_pixel_size(job_id: str, index: int, request: Request):
        job = manager.get(job_id)
        if job is None or not 0 <= index < len(job.items):
            return _error(404, "no such job or image")
        form = await request.form(max_files=0, max_fields=5)
        try:
            px = float(str(form.get("pixel_size_nm", "")).strip().replace(",", "."))
        except ValueError:
            return _error(400, "pixel size must be a number (nm/px)")
        if not (0 < px < 100):
            return _error(400, f"pixel size must be a positive number of nm/px (< 100), got {px:g}")
        try:
            it = manager.rerun(job, index, px)
        except ValueError as exc:
            return _error(409, str(exc))
        return it.public()

    def _done_item(job_id: str, index: int):
        job = manager.get(job_id)
        if job is None or not 0 <= index < len(job.items):
            return None, None
        it = job.items[index]
        if it.status != DONE or not it.result:
            return job, None
        return job, it

    @app.get("/api/jobs/{job_id}/images/{index}/coords.json")
    def coords_json(job_id: str, index: int):
        job, it = _done_item(job_id, index)
        if it is None:
            return _error(404, "no result for this image")
        with open(job.results_dir / it.result["files"]["csv"], newline="") as fh:
            rows = list(csv.reader(fh))
        return {"columns": rows[0] if rows else [], "rows": rows[1:]}

    @app.get("/api/jobs/{job_id}/images/{index}/{kind}")
    def image_file(job_id: str, index: int, kind: str):
        if kind not in _FILE_KINDS:
            return _error(404, f"unknown file kind {kind!r}")
        job, it = _done_item(job_id, index)
        if it is None:
            return _error(404, "no result for this image")
        key, media = _FILE_KINDS[kind]
        rel = it.result["files"].get(key)
        if not rel:
            return _error(404, f"no {kind} for this image")
        download = {"csv": f"{it.stem}.csv", "descriptors": f"{it.stem}_descriptors.json",
                    "json": f"{it.stem}.json", "envelopes": f"{it.stem}_envelopes.json"}.get(key)
        return FileResponse(job.results_dir / rel, media_type=media, filename=download,
                            content_disposition_type="attachment" if download else "inline")

    @app.get("/api/jobs/{job_id}/summary.csv")
    def summary(job_id: str):
        job = manager.get(job_id)
        if job is None:
            return _error(404, f"no such job: {job_id}")
        return Response(summary_csv(job), media_type="text/csv",
                        headers={"Content-Disposition": f'attachment; filename="sacmap-{job.id}-summary.csv"'})

    @app.get("/api/jobs/{job_id}/results.zip")
    def results_zip(job_id: str):
        job = manager.get(job_id)
        if job is None:
            return _error(404, f"no such job: {job_id}")
        path = manager.zip_path(job)
        return FileResponse(path, media_type="application/zip", filename=f"sacmap-{job.id}.zip")

    return app


def serve(host: str = "127.0.0.1", port: int = 7860, **kwargs) -> None:
    """Run the app with uvicorn until interrupted (``kwargs`` go to :func:`create_app`)."""
    import uvicorn

    app = create_app(**kwargs)
    uvicorn.run(app, host=host, port=port, log_level="warning")
