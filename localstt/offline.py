"""Importing this module makes the process offline for good: import it before anything that may
import huggingface_hub, transformers or NeMo (localstt/store.py and model_loader.py do, first).

It sets the hub libraries' offline switches (localstt/environment.py, `go_offline`) and, on a Python
older than 3.11.4, gives NeMo the tarfile it needs (localstt/compat.py). Both are idempotent.
"""

from __future__ import annotations

from localstt.compat import tarfile_with_extraction_filters
from localstt.environment import go_offline

go_offline()
tarfile_with_extraction_filters()
