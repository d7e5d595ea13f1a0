"""One-time setup: download each model at its pinned commit, verify it, and export it to local_models/.

uv run python export_models.py                 # every model in config.toml
uv run python export_models.py KEY             # just one ([models.KEY] in config.toml)
uv run python export_models.py --verify        # full sha256 check of what is on disk
uv run python export_models.py --update        # move the pins to the hub's current main
uv run python export_models.py --repair KEY    # download again whatever fails the check

The command line only: the export itself is localstt/export.py.
"""

from __future__ import annotations

from localstt import environment

environment.no_export_telemetry()  # before huggingface_hub is imported

import argparse  # noqa: E402
import sys  # noqa: E402
from collections.abc import Sequence  # noqa: E402

from localstt import export  # noqa: E402
from localstt.config import ConfigError, load_config  # noqa: E402
from localstt.errors import LocalSttError  # noqa: E402
from localstt.logfile import log_to_console  # noqa: E402
from localstt.portability import interrupt_on_ctrl_break  # noqa: E402


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Download, verify and export models once, at pinned commits."
    )
    parser.add_argument("models", nargs="*", help="model keys from config.toml (default: all)")
    parser.add_argument("--config", help="path to config.toml")
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--verify", action="store_true", help="full sha256 check of the exports on disk")
    action.add_argument("--update", action="store_true", help="move the pins to the hub's current main")
    action.add_argument("--repair", action="store_true", help="download again files that fail the check")
    args = parser.parse_args(argv)
    interrupt_on_ctrl_break()
    log_to_console()

    try:
        config = load_config(args.config)
        keys = args.models or list(config.models)
        for key in keys:
            config.model(key)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    failures = 0
    for key in keys:
        try:
            if args.verify:
                failures += not export.verify_model(config, key)
            else:
                export.export_model(config, key, update=args.update, repair=args.repair)
        except LocalSttError as error:
            print(f"{key}: error: {error}", file=sys.stderr)
            failures += 1
        except KeyboardInterrupt:
            print(
                f"\n{key}: interrupted. Nothing half-done will be loaded; rerun the same command to continue."
            )
            return 130
        except OSError as error:
            print(
                f"{key}: error: {error.strerror or error} ({error.filename or ''}); fix that and rerun.",
                file=sys.stderr,
            )
            failures += 1
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
