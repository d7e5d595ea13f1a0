"""Load exported models from local_models/ only. This module never downloads anything.

    from model_loader import load_model
    model = load_model(key)                 # NeMo's model for config.toml's [models.KEY], ready;
                                            # loaded once per process

Importing it makes the process offline first (localstt/offline.py), so nothing in it can reach a
hub, even by accident. Everything here lives in the localstt package (localstt/store.py); this file
names the public part and shows the library's messages on the console.
"""

from __future__ import annotations

import localstt.offline  # noqa: F401,I001  # first: the hub libraries are offline before they are imported
from localstt.errors import ExportError, LoadError, LocalSttError
from localstt.logfile import log_to_console
from localstt.models import LoadedModel
from localstt.store import ModelStatus, ModelStore, default_store, load_model

log_to_console()

__all__ = [
    "ExportError",
    "LoadError",
    "LoadedModel",
    "LocalSttError",
    "ModelStatus",
    "ModelStore",
    "default_store",
    "load_model",
]
