"""``sacmap app``: the local web app for atom detection and metal-centre statistics."""

from __future__ import annotations

import argparse

from sacmap.workflows.cli.options import number


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "app",
        help="start the web app (upload STEM images, detect atoms, descriptors, downloads)",
        description="Start the sacmap web app on this machine (offline; binds 127.0.0.1 by default). Open the "
        "printed address in a browser, upload HAADF-STEM images and download detections, descriptors and plots.",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", **number(int, lo=1, hi=65535), default=7860, help="port (default 7860)")
    p.add_argument("--workdir", default=None, help="folder for uploads and results (default: a temporary folder, "
                   "removed on exit)")
    p.add_argument("--max-file-mb", **number(float, lo=0.0, lo_open=True), default=64.0, help="upload limit per file in MB (default 64)")
    p.add_argument("--max-files", **number(int, lo=1), default=32, help="files per batch (default 32)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="torch device for detection")
    p.set_defaults(func=run_app)


def run_app(args: argparse.Namespace) -> int:
    from sacmap.workflows.app.server import serve

    port, max_file_mb, max_files = args.port, args.max_file_mb, args.max_files  # checked as parsed

    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"sacmap app: WARNING: listening on {args.host}; anyone who can reach it can upload files")
    print(f"sacmap app: open http://{'127.0.0.1' if args.host in ('0.0.0.0', '::') else args.host}:{port}/ "
          "(Ctrl-C to stop)", flush=True)
    serve(host=args.host, port=port, workdir=args.workdir, max_file_mb=max_file_mb, max_files=max_files,
          device=args.device)
    return 0
