"""Batches of uploaded images: storage, one worker thread, progress, per-image errors and the ZIP export.

A *job* is one upload of one or many images with one set of settings. Its images are processed one at a time
by a single background thread (detection is CPU-bound; two at once would only compete for the cores), so the
web server stays responsive and reports progress while it works. A bad image (unreadable, NaN, constant, too
large, no pixel size) gets an error message and the remaining images of the batch are still processed. An image
without a pixel size can be re-run with one given in the page.

Files of a job live under ``<workdir>/<job id>/``: ``uploads/`` (the files as received, renamed
``in_000.<suffix>``; a user's file name is never used as a path; deleted once processed, except an image
waiting for its pixel size) and ``results/`` (what
:func:`sacmap.workflows.app.pipeline.process_image` writes). Old jobs are removed when more than ``max_jobs`` exist.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import queue
import re
import secrets
import shutil
import tempfile
import threading
import time
import traceback
import zipfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from sacmap.core.atomic import atomic_write_with
from sacmap.workflows.app import pipeline

log = logging.getLogger(__name__)

#: per-image status values
QUEUED, RUNNING, DONE, ERROR, NEEDS_PIXEL_SIZE = "queued", "running", "done", "error", "needs_pixel_size"

SUMMARY_COLUMNS = [
    "image", "status", "message", "pixel_size_nm", "pixel_size_source", "shape", "n_atoms", "support_area_nm2",
    "density_nm2", "nnd_mean_nm", "nnd_sd_nm", "multimer_share", "n_multimers", "nuclearity", "clark_evans", "z",
    "envelope_G_p_rank", "envelope_L_p_rank", "elements", "warnings",
]


def safe_stem(name: str) -> str:
    """A file-system-safe stem for output files from an uploaded file name (letters, digits, ``._-``)."""
    stem = Path(str(name).replace("\\", "/")).name
    stem = stem.rsplit(".", 1)[0] if "." in stem else stem
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._-")
    return stem[:80] or "image"


def safe_suffix(name: str) -> str:
    """The lower-case suffix of an uploaded file name if it is plain (``.tif``), else ``''``."""
    suffix = Path(str(name).replace("\\", "/")).suffix.lower()
    return suffix if re.fullmatch(r"\.[a-z0-9]{1,8}", suffix) else ""


@dataclass
class ImageItem:
    """One uploaded image of a job and what became of it."""

    index: int
    name: str  # the uploaded file name, for display only
    stem: str  # unique, safe stem of this image's output files
    path: Path  # where the upload is stored
    size_bytes: int
    status: str = QUEUED
    stage: str = ""
    fraction: float = 0.0  # progress within this image, 0..1
    message: str = ""
    pixel_size_nm: float | None = None  # a pixel size given for this image only (overrides the job's)
    result: dict | None = None

    def public(self) -> dict:
        return {
            "index": self.index, "name": self.name, "stem": self.stem, "size_bytes": self.size_bytes,
            "status": self.status, "stage": self.stage, "message": self.message, "result": self.result,
        }


@dataclass
class Job:
    """One batch: settings, images and the folder holding their files."""

    id: str
    settings: pipeline.AppSettings
    dir: Path
    items: list[ImageItem] = field(default_factory=list)
    created: float = field(default_factory=time.time)
    version: int = 0  # bumped on every change; the cached ZIP is rebuilt when it differs
    _zip_version: int = -1

    @property
    def results_dir(self) -> Path:
        return self.dir / "results"

    @property
    def finished(self) -> bool:
        return all(it.status not in (QUEUED, RUNNING) for it in self.items)

    def progress(self) -> float:
        """Fraction of the batch done, 0..1 (finished images count 1, the running one its own fraction)."""
        if not self.items:
            return 1.0
        total = 0.0
        for it in self.items:
            total += 1.0 if it.status not in (QUEUED, RUNNING) else (it.fraction if it.status == RUNNING else 0.0)
        return total / len(self.items)

    def public(self) -> dict:
        running = [it for it in self.items if it.status == RUNNING]
        n_done = sum(it.status == DONE for it in self.items)
        n_err = sum(it.status in (ERROR, NEEDS_PIXEL_SIZE) for it in self.items)
        if running:
            it = running[0]
            current = f"image {it.index + 1} of {len(self.items)} ({it.name}): {it.stage}"
        elif self.finished:
            current = f"finished: {n_done} processed, {n_err} with problems"
        else:
            current = "queued"
        return {
            "id": self.id, "finished": self.finished, "progress": round(self.progress(), 4), "current": current,
            "n_images": len(self.items), "n_done": n_done, "n_problems": n_err,
            "settings": self.settings.to_dict(), "items": [it.public() for it in self.items],
            "summary": summary_rows(self),
        }


def summary_rows(job: Job) -> list[dict]:
    """One row per image with the batch-summary columns (:data:`SUMMARY_COLUMNS`)."""
    rows = []
    for it in job.items:
        row = dict.fromkeys(SUMMARY_COLUMNS, "")
        row.update(image=it.name, status=it.status, message=it.message)
        res = it.result
        if res:
            d = res.get("descriptors", {})
            row.update(
                pixel_size_nm=res.get("pixel_size_nm"), pixel_size_source=res.get("pixel_size_source", ""),
                shape="x".join(str(s) for s in res.get("shape", [])), n_atoms=res.get("n_atoms"),
                support_area_nm2=res.get("support_area_nm2"),
                elements=";".join(f"{k}:{v}" for k, v in res.get("element_counts", {}).items()),
                warnings="; ".join(res.get("warnings") or []),
            )
            for key in ("density_nm2", "nnd_mean_nm", "nnd_sd_nm", "multimer_share", "n_multimers", "clark_evans",
                        "z"):
                row[key] = d.get(key, "")
            for env in res.get("envelopes") or []:  # global rank envelope p against CSR (199 simulations)
                if f"envelope_{env.get('function')}_p_rank" in row:
                    row[f"envelope_{env['function']}_p_rank"] = env.get("p_rank_erl")
            nuc = d.get("nuclearity") or {}
            row["nuclearity"] = ";".join(f"{k}:{v}" for k, v in sorted(nuc.items(), key=lambda kv: int(kv[0])))
        rows.append(row)
    return rows


def summary_csv(job: Job) -> str:
    """The batch summary as CSV text (:data:`SUMMARY_COLUMNS`)."""
    return _csv_text(summary_rows(job), SUMMARY_COLUMNS)


def descriptors_csv(items: list[ImageItem]) -> str:
    """All descriptors of every processed image as CSV, one row per image (columns of
    ``sacmap.analysis.spatial.descriptors.flatten_descriptors``, as ``sacmap stats`` writes ``descriptors.csv``)."""
    from sacmap.analysis.spatial.descriptors import flatten_descriptors

    rows = [{"image": it.name, **flatten_descriptors(it.result.get("descriptors", {}))}
            for it in items if it.status == DONE and it.result]
    columns = list(dict.fromkeys(k for row in rows for k in row)) or ["image"]
    return _csv_text(rows, columns)


def _csv_text(rows: list[dict], columns: list[str]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
    return buf.getvalue()


ProcessFn = Callable[..., dict]


class JobManager:
    """Holds the jobs of one app instance and processes their images on one background thread.

    Parameters
    ----------
    workdir : folder for job files; a fresh temporary folder (removed by :meth:`close`) when None.
    process : the per-image function, :func:`sacmap.workflows.app.pipeline.process_image` (same signature when
        replaced, e.g. in tests).
    max_jobs : jobs kept; the oldest finished ones (and their files) are deleted beyond this.
    """

    def __init__(self, workdir: str | Path | None = None, process: ProcessFn | None = None, max_jobs: int = 16):
        self._own_dir = workdir is None
        self.workdir = Path(tempfile.mkdtemp(prefix="sacmap-app-")) if workdir is None else Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.process = process or pipeline.process_image
        self.max_jobs = max_jobs
        self.jobs: dict[str, Job] = {}
        self._lock = threading.RLock()
        self._queue: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._work, name="sacmap-app-worker", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ jobs
    def new_job(self, settings: pipeline.AppSettings) -> Job:
        """An empty job with its folders; add images with :meth:`add_upload`, then :meth:`start`."""
        job_id = secrets.token_hex(8)
        job_dir = self.workdir / job_id
        (job_dir / "uploads").mkdir(parents=True)
        (job_dir / "results").mkdir()
        job = Job(id=job_id, settings=settings, dir=job_dir)
        with self._lock:
            self.jobs[job_id] = job
            self._prune()
        return job

    def add_upload(self, job: Job, name: str, stream, max_bytes: int) -> ImageItem:
        """Copy one uploaded file (a binary stream) into the job; a file over ``max_bytes`` becomes an error item.

        The copy stops as soon as the limit is passed, so nothing larger than ``max_bytes`` is kept on disk.
        """
        index = len(job.items)
        display = Path(str(name or f"file{index + 1}").replace("\\", "/")).name[:200]
        stem, n = safe_stem(display), 2
        taken = {it.stem for it in job.items}
        base = stem
        while stem in taken:
            stem, n = f"{base}_{n}", n + 1
        path = job.dir / "uploads" / f"in_{index:03d}{safe_suffix(display)}"
        size, too_large = 0, False
        with open(path, "wb") as fh:
            while chunk := stream.read(1 << 20):
                size += len(chunk)
                if size > max_bytes:
                    too_large = True
                    break
                fh.write(chunk)
        item = ImageItem(index=index, name=display, stem=stem, path=path, size_bytes=size)
        if too_large:
            path.unlink(missing_ok=True)
            item.status = ERROR
            item.message = (f"{display}: file is larger than the upload limit of {max_bytes / 2**20:.0f} MB; "
                            "crop or bin it, or start the app with a larger --max-file-mb")
        elif size == 0:
            item.status = ERROR
            item.message = f"{display}: the file is empty"
        job.items.append(item)
        job.version += 1
        return item

    def start(self, job: Job) -> None:
        """Queue every image of the job that is waiting."""
        for it in job.items:
            if it.status == QUEUED:
                self._queue.put((job.id, it.index))

    def rerun(self, job: Job, index: int, pixel_size_nm: float) -> ImageItem:
        """Process one image of a job again with a pixel size given for it (nm/px)."""
        it = job.items[index]
        if it.status in (QUEUED, RUNNING):
            return it
        if not it.path.exists():
            raise ValueError(f"{it.name}: the upload is no longer stored; upload it again")
        with self._lock:
            it.pixel_size_nm = float(pixel_size_nm)
            it.status, it.stage, it.fraction, it.message, it.result = QUEUED, "", 0.0, "", None
            job.version += 1
        self._queue.put((job.id, index))
        return it

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self.jobs.get(job_id)

    def _prune(self) -> None:
        if len(self.jobs) <= self.max_jobs:
            return
        for job in sorted(self.jobs.values(), key=lambda j: j.created):
            if len(self.jobs) <= self.max_jobs:
                break
            if job.finished:
                del self.jobs[job.id]
                shutil.rmtree(job.dir, ignore_errors=True)

    # ------------------------------------------------------------------ worker
    def _work(self) -> None:
        if self.process is pipeline.process_image:
            try:  # import torch, the detector and the statistics while the user picks files
                pipeline.warm_up()
            except Exception:
                log.exception("warm-up failed (the first image will say why)")
        while True:
            task = self._queue.get()
            if task is None:
                return
            job_id, index = task
            job = self.get(job_id)
            if job is None or job.items[index].status != QUEUED:
                continue  # job deleted, or image already processed
            try:
                self._run_one(job, job.items[index])
            except Exception:  # never let the worker die
                log.exception("app worker failed on job %s image %s", job_id, index)

    def _run_one(self, job: Job, it: ImageItem) -> None:
        with self._lock:
            it.status, it.stage, it.fraction = RUNNING, "starting", 0.0
            job.version += 1

        def progress(stage: str, fraction: float) -> None:
            it.stage, it.fraction = stage, max(0.0, min(1.0, float(fraction)))

        t0 = time.perf_counter()
        try:
            result = self.process(
                it.path, it.stem, job.results_dir, job.settings, pixel_size_nm=it.pixel_size_nm, name=it.name,
                progress=progress,
            )
        except pipeline.PixelSizeMissing as exc:
            status, message, result = NEEDS_PIXEL_SIZE, _clean(str(exc), it), None
        except pipeline.INPUT_ERRORS as exc:
            status, message, result = ERROR, _clean(str(exc), it), None
        except MemoryError:
            status, message, result = ERROR, f"{it.name}: not enough memory to process this image", None
        except Exception as exc:
            log.error("processing %s failed:\n%s", it.name, traceback.format_exc())
            status, message, result = ERROR, f"{it.name}: processing failed ({type(exc).__name__}: {exc})", None
        else:
            status, message = DONE, ""
            result = dict(result, name=it.name, seconds=round(time.perf_counter() - t0, 3))
        with self._lock:
            it.status, it.message, it.result, it.stage, it.fraction = status, message, result, "", 1.0
            job.version += 1
        if status != NEEDS_PIXEL_SIZE:  # keep an upload only while it may be re-run with a pixel size
            it.path.unlink(missing_ok=True)

    # ------------------------------------------------------------------ export
    def zip_path(self, job: Job) -> Path:
        """The ZIP with everything of the job (rebuilt when the job changed since the last build).

        Contents: per image ``<stem>.csv`` (coordinates), ``<stem>.json`` (detection record), the overlay,
        support-mask, NND-histogram and envelope PNGs, ``<stem>_descriptors.json`` and ``<stem>_envelopes.json``; ``summary.csv`` (one row per image,
        problems included), ``descriptors.csv`` (every descriptor, one row per processed image) and
        ``settings.json`` (the settings used, per-image pixel sizes and software versions).
        """
        path = job.dir / "results.zip"
        with self._lock:
            if job._zip_version == job.version and path.exists():
                return path
            version = job.version
            items = [ImageItem(**{**asdict(it)}) for it in job.items]
        def write(tmp: Path) -> None:
            with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
                for it in items:
                    if it.status != DONE or not it.result:
                        continue
                    for rel in it.result.get("files", {}).values():
                        src = job.results_dir / rel
                        if src.is_file():
                            zf.write(src, f"results/{rel}")
                zf.writestr("summary.csv", summary_csv(job))
                zf.writestr("descriptors.csv", descriptors_csv(items))
                zf.writestr("settings.json", json.dumps(self.settings_record(job), indent=2, default=str))
                problems = [it.message for it in items if it.status in (ERROR, NEEDS_PIXEL_SIZE)]
                if problems:
                    zf.writestr("problems.txt", "\n".join(problems) + "\n")

        atomic_write_with(path, write)
        with self._lock:
            job._zip_version = version
        return path

    def settings_record(self, job: Job) -> dict:
        """The settings of a job as written to ``settings.json``."""
        return {
            "settings": job.settings.to_dict(),
            "images": [
                {
                    "image": it.name, "stem": it.stem, "status": it.status, "message": it.message,
                    "pixel_size_nm": (it.result or {}).get("pixel_size_nm"),
                    "pixel_size_source": (it.result or {}).get("pixel_size_source"),
                    "detection_settings": (it.result or {}).get("detection_settings"),
                }
                for it in job.items
            ],
            "software": pipeline.software_versions(),
            "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(job.created)),
        }

    def close(self) -> None:
        """Stop the worker (after the current image) and remove the work folder if the manager created it."""
        self._queue.put(None)
        self._thread.join(timeout=30)
        if self._own_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)


def _clean(message: str, it: ImageItem) -> str:
    """An error message with the stored upload path replaced by the uploaded file name."""
    message = message.replace(str(it.path), it.name)
    if not message.startswith(it.name):
        message = f"{it.name}: {message}"
    return message
