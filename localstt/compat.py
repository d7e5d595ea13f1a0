"""What an older Python lacks that NeMo relies on, filled in before NeMo is imported.

NeMo 3.0's `restore_from` (and so `from_pretrained`) unpacks a `.nemo` with
`tar.extract(member, filter="data")`, the extraction filters of PEP 706. Python 3.11 has them only
from 3.11.4, and Debian 12's own python3 is 3.11.2: there every NeMo load of a `.nemo` fails with
"extract() got an unexpected keyword argument 'filter'". On such a Python the standard `tarfile`
module is replaced by `backports.tarfile` (CPython 3.12's tarfile, installed only there by
pyproject.toml's marker) for every module imported after this. The app's own loader does not need
it (localstt/nemo_archive.py copies members out itself); NeMo's own loading paths, which the tests
and benchmarks compare against and the fallbacks use, do.
"""

from __future__ import annotations

import sys
import tarfile


def tarfile_with_extraction_filters() -> None:
    """Make `import tarfile` give a module with PEP 706 filters. Call before importing NeMo."""
    if hasattr(tarfile, "data_filter"):
        return
    import backports.tarfile  # Python < 3.11.4 only

    sys.modules["tarfile"] = backports.tarfile
