"""``latentguard serve [--host 127.0.0.1] [--port 7860] [--model SPEC] [--workers N] [--data-dir DIR]``.

Needs the ``web`` extra (``pip install 'latentguard[web]'``: FastAPI, uvicorn, python-multipart, Jinja2).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from latentguard.core.errors import UserError
from latentguard.core.units import cli_number
from latentguard.serve.config import CPU_STEPS, ServeConfig, default_editor, default_models

_number = cli_number("16/255 or 0.0627")


def _run(args: argparse.Namespace) -> int:
    try:  # the web extra: FastAPI and uvicorn are optional dependencies
        import uvicorn

        from latentguard.serve.app import create_app
    except ModuleNotFoundError as exc:
        raise UserError(f"latentguard serve needs the web extra ({exc.name} is missing): "
                        "pip install 'latentguard[web]'") from None
    temp = None
    if args.data_dir is None:
        temp = tempfile.mkdtemp(prefix="latentguard-serve-")
    data_dir = Path(args.data_dir or temp)
    try:
        config = ServeConfig(
            host=args.host, port=args.port, models=args.model or default_models(), editor=args.editor or default_editor(),
            workers=args.workers, data_dir=data_dir, max_upload_bytes=int(args.max_upload_mb * 1024 * 1024),
            max_pixels=args.max_pixels, queue_size=args.queue_size, sync_wait_s=args.wait, job_timeout_s=args.job_timeout,
            ttl_s=args.ttl, default_steps=args.steps, max_steps=args.max_steps, preview_size=args.preview_size,
            preview_steps=args.preview_steps, threads=args.threads, device=args.device,
            measure_records=not args.no_measure,
            **({"default_method": args.method} if args.method else {}),
        )
    except ValueError as exc:
        raise UserError(str(exc)) from None
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"latentguard serve: warning: listening on {args.host}: other machines can reach this server; it has "
              "no authentication", file=sys.stderr)
    print(f"latentguard serve: http://{'[%s]' % args.host if ':' in args.host else args.host}:{args.port}/ "
          f"(surrogates {', '.join(config.models)}; editor {config.editor}; data in {data_dir})", file=sys.stderr)
    try:
        uvicorn.run(create_app(config), host=args.host, port=args.port, log_level="warning" if not args.verbose else "info",
                    timeout_keep_alive=5)
    finally:
        if temp is not None:
            shutil.rmtree(temp, ignore_errors=True)
    return 0


def register(subparsers) -> None:
    """Add ``latentguard serve`` to the CLI."""
    p = subparsers.add_parser(
        "serve", help="a local web page and HTTP API that protect images (needs latentguard[web])",
        description="Serve a web page for people and an HTTP API for platforms (POST /v1/protect, GET /v1/jobs/ID, "
                    "GET /v1/methods, GET /healthz; OpenAPI at /openapi.json). Binds to 127.0.0.1 by default.")
    p.add_argument("--host", default="127.0.0.1", help="interface (default: 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int, default=7860, help="TCP port (default: 7860)")
    p.add_argument("--model", action="append", default=None, metavar="SPEC",
                   help="a surrogate VAE clients may choose; repeat to offer several, the first is the default "
                        "(default: the installed zoo VAEs, zoo:vae-a first)")
    p.add_argument("--editor", default=None, metavar="SPEC",
                   help="img2img pipeline of the preview and of the diffusion baselines "
                        "(default: zoo:ldm-photo when installed, else zoo:t2i)")
    p.add_argument("--method", default=None, help="default method (default: the fast protector when installed, else pca+)")
    p.add_argument("--steps", type=int, default=CPU_STEPS, help=f"default steps (default: {CPU_STEPS}, sized for a CPU)")
    p.add_argument("--max-steps", type=int, default=200, help="largest steps a request may ask for (default: 200)")
    p.add_argument("--workers", type=int, default=1, help="worker threads, each owning its models (default: 1)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--data-dir", default=None, metavar="DIR",
                   help="the only folder the server writes to (default: a temporary folder removed at exit)")
    p.add_argument("--max-upload-mb", type=_number, default=20, help="largest upload in MiB (default: 20)")
    p.add_argument("--max-pixels", type=int, default=2048 * 2048, help="largest image in pixels (default: 2048*2048)")
    p.add_argument("--queue-size", type=int, default=16, help="jobs waiting beyond the running ones; then 429 (default: 16)")
    p.add_argument("--wait", type=float, default=10.0, help="seconds POST /v1/protect waits for the PNG before 202 (default: 10)")
    p.add_argument("--job-timeout", type=float, default=600.0, help="seconds before a job fails (default: 600)")
    p.add_argument("--ttl", type=float, default=3600.0, help="seconds finished jobs are kept (default: 3600)")
    p.add_argument("--preview-size", type=int, default=128, help="preview crop side in pixels (default: 128)")
    p.add_argument("--preview-steps", type=int, default=20, help="img2img steps of the preview, strength 0.5 (default: 20)")
    p.add_argument("--device", default="auto", help="auto|cpu|cuda|cuda:N (default: auto)")
    p.add_argument("--no-measure", action="store_true",
                   help="skip the before/after objective and KL of each result (null in the API; the fast "
                        "protector then needs no surrogate pass: ~18x faster at 512 px on a CPU)")
    p.set_defaults(func=_run)
