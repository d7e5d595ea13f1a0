"""The web app's command line (`transcribe_ui.py`): read the arguments and config.toml, apply the access
policy (localstt/web/access.py), start the background warm-up, and serve until stopped."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from localstt import environment
from localstt.config import load_config
from localstt.errors import ConfigError
from localstt.logfile import log_to_console
from localstt.web.access import Access, check_exposure, parse_auth
from localstt.web.app import TranscriptionApp
from localstt.web.server import serve


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Local transcription web app.")
    parser.add_argument("--config", help="path to config.toml")
    parser.add_argument("--host", help="address to bind (default from config.toml: 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default from config.toml: 7860)")
    parser.add_argument("--share", action="store_true", help="also make a public gradio.live link")
    parser.add_argument("--auth", help="user:password required to open the app (or LOCALSTT_AUTH)")
    parser.add_argument(
        "--allow-no-auth", action="store_true", help="serve on a non-loopback address without --auth"
    )
    parser.add_argument(
        "--api-key", help="key the API under /v1 requires as a Bearer token (or LOCALSTT_API_KEY)"
    )
    parser.add_argument(
        "--max-queue", type=int, default=16, help="requests waiting at most; more are refused (16)"
    )
    parser.add_argument(
        "--keep-outputs-minutes",
        type=float,
        default=10.0,
        help="delete a job's transcript files this long after the job (10)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    log_to_console()
    try:
        config = load_config(args.config)
        auth = parse_auth(args.auth or environment.auth())
    except (ConfigError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    access = Access(auth, args.api_key or environment.api_key())
    host = args.host or config.app.host
    port = args.port or config.app.port
    warning, refusal = check_exposure(host, args.share, access, args.allow_no_auth)
    if warning:
        print(warning)
    if refusal:
        print(f"error: {refusal}", file=sys.stderr)
        return 2
    app = TranscriptionApp(config, keep_outputs_s=args.keep_outputs_minutes * 60, max_queue=args.max_queue)
    app.start_preload()
    try:
        serve(app, host, port, access, share=args.share)
    finally:
        app.close()
    return 0
