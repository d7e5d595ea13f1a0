"""Every environment variable the project reads or sets, in one place.

Read:

* ``LOCALSTT_CONFIG``: the config.toml to use when no ``--config`` is given (localstt/config.py).
* ``LOCALSTT_LOG_DIR``: the folder for ``localstt.log`` (localstt/logfile.py); default ``logs/``
  beside config.toml.
* ``LOCALSTT_FAST_LOAD``: ``0`` makes the loaders take NeMo's plain way instead of mapping the weights
  (localstt/loading/); the result is the same model, only slower.
* ``LOCALSTT_AUTH``: ``user:password`` for the web app when ``--auth`` is not given.
* ``LOCALSTT_API_KEY``: the key the API under ``/v1`` requires when ``--api-key`` is not given, and
  the key ``transcribe`` sends to a running app (localstt/runs/on_app.py).
* ``LOCALSTT_EXPORT_COMMAND``: how messages spell the export command (default
  ``uv run python export_models.py``), for installs that run it another way.

Set, before the libraries that read them are imported:

* by `go_offline` (localstt/offline.py calls it on import; the loader imports that first):
  ``HF_HUB_OFFLINE``, ``TRANSFORMERS_OFFLINE``, ``HF_DATASETS_OFFLINE``, ``HF_HUB_DISABLE_TELEMETRY``
  and ``NEMO_TELEMETRY`` (unless set): nothing that loads a model can reach a hub.
* by `no_export_telemetry` (the export script, which does talk to the hub): ``HF_HUB_DISABLE_TELEMETRY``.
* by `no_gradio_analytics` (the web app): ``GRADIO_ANALYTICS_ENABLED=False``.

Variables that belong to other libraries (``HF_ENDPOINT``, ``HF_TOKEN``, ``HF_HOME``,
``GRADIO_TEMP_DIR``, ...) are read by those libraries as they document.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

CONFIG_ENV = "LOCALSTT_CONFIG"
LOG_DIR_ENV = "LOCALSTT_LOG_DIR"
FAST_LOAD_ENV = "LOCALSTT_FAST_LOAD"
AUTH_ENV = "LOCALSTT_AUTH"
API_KEY_ENV = "LOCALSTT_API_KEY"
EXPORT_COMMAND_ENV = "LOCALSTT_EXPORT_COMMAND"
DEFAULT_EXPORT_COMMAND = "uv run python export_models.py"

OFFLINE_SWITCHES = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
}


def config_path() -> Path | None:
    """$LOCALSTT_CONFIG as an absolute path, or None when it is not set."""
    value = os.environ.get(CONFIG_ENV, "").strip()
    return Path(value).expanduser().resolve() if value else None


def log_dir() -> Path | None:
    """$LOCALSTT_LOG_DIR as an absolute path, or None when it is not set."""
    value = os.environ.get(LOG_DIR_ENV, "").strip()
    return Path(value).expanduser().absolute() if value else None


def fast_load_problem() -> str | None:
    """Why the fast (mapped) loaders must not run: "LOCALSTT_FAST_LOAD=0", or None."""
    return f"{FAST_LOAD_ENV}=0" if os.environ.get(FAST_LOAD_ENV, "1") == "0" else None


def auth() -> str | None:
    return os.environ.get(AUTH_ENV) or None


def api_key() -> str | None:
    """$LOCALSTT_API_KEY: the key the API requires (`Authorization: Bearer KEY`), or None."""
    return os.environ.get(API_KEY_ENV, "").strip() or None


def export_command_prefix() -> str:
    return os.environ.get(EXPORT_COMMAND_ENV, "").strip() or DEFAULT_EXPORT_COMMAND


def go_offline() -> None:
    """Tell the hub libraries (and NeMo's telemetry) that there is no network, also when one of them
    was imported already (e.g. by a test harness)."""
    os.environ.update(OFFLINE_SWITCHES)
    os.environ.setdefault("NEMO_TELEMETRY", "0")
    if "huggingface_hub" in sys.modules:  # it read the variables at import: tell it too
        sys.modules["huggingface_hub"].constants.HF_HUB_OFFLINE = True


def no_export_telemetry() -> None:
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


def no_gradio_analytics() -> None:
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
