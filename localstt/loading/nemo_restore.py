"""Restoring a NeMo model from its `.nemo` in place (localstt/loading/nemo_archive.py reads the
archive): the mapped load where it can be used, else the plain one, and the models nested in the
archive (`restore_nested`)."""

from __future__ import annotations

import dataclasses
import gc
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from localstt.errors import LoadError
from localstt.loading import nemo_archive
from localstt.loading.nemo_archive import NemoLayout, read_layout, unpacked_folder

if TYPE_CHECKING:
    from localstt.manifest import Manifest

logger = logging.getLogger(__name__)


def load_nemo(
    export_dir: Path,
    manifest: Manifest,
    device: str,
    model_class: str,
    mapped: bool = True,
    config_changes: dict[str, Any] | None = None,
    nested: Callable[[Any, NemoLayout, Path, bool], None] | None = None,
) -> tuple[Any, str]:
    """The export's .nemo read in place as `nemo.collections.asr.models.<model_class>`, in eval mode
    on `device` with float32 weights: (model, "mapped" or "plain"). `mapped=False`: the plain load
    only, for a class that cannot be built on the meta device. `config_changes`: set in its config
    before it is built. `nested(model, layout, folder, fast)`: called once it is built, to restore
    the models nested in the archive (`restore_nested`)."""
    record = next(r for r in manifest.files if r.path.endswith(".nemo"))
    layout = read_layout(export_dir / record.path)  # refuses links, absolute paths and ".."
    with unpacked_folder(layout, record.sha256) as folder:

        def restore(fast: bool) -> Any:
            model = _restore(layout, folder, fast, device, model_class, config_changes)
            if nested is not None:
                nested(model, layout, folder, fast)
            return model

        if not mapped:
            return restore(False), "plain"
        problem = nemo_archive.fast_path_problem(layout)
        for member in layout.nested if problem is None else ():
            problem = nemo_archive.fast_path_problem(dataclasses.replace(layout, weights=member, nested=()))
            if problem is not None:
                problem = f"{member.name}: {problem}"
                break
        if problem is None:
            try:
                return restore(True), "mapped"
            except LoadError:
                raise
            except Exception as error:  # internals moved: the plain load gives the same model
                problem = f"{type(error).__name__}: {error}"
                gc.collect()
        logger.warning("note: reading %s into memory (%s)", layout.path.name, problem)
        return restore(False), "plain"


def restore_nested(layout: NemoLayout, folder: Path, fast: bool, prefix: str, device: str) -> Any | None:
    """The model nested in the archive under `prefix` (`<prefix>_model_config.yaml` unpacked in
    `folder`, `<prefix>_model_weights.ckpt` mapped in place when `fast`), in eval mode on `device`;
    None when the archive has none."""
    inner = layout.nested_model(prefix)
    if inner is None or not (folder / f"{prefix}_model_config.yaml").is_file():
        return None
    return _restore(inner, folder, fast, device, "ASRModel", config_yaml=f"{prefix}_model_config.yaml")


def _restore(
    layout: NemoLayout,
    folder: Path,
    fast: bool,
    device: str,
    model_class: str,
    config_changes: dict[str, Any] | None = None,
    config_yaml: str = "model_config.yaml",
) -> Any:
    import nemo.collections.asr.models as nemo_models  # NeMo: ~10 s to import, so not before
    from nemo.utils import logging as nemo_logging  # NeMo: ~10 s to import, so not before

    nemo_logging.setLevel(nemo_logging.ERROR)
    restorer = nemo_archive.connector(layout, folder, fast, config_yaml, config_changes)
    model = getattr(nemo_models, model_class).restore_from(
        str(layout.path), map_location=device, save_restore_connector=restorer
    )
    if device != "cpu":
        model = model.to(device)
    # Weights stay float32; the engine runs inference under autocast in `dtype` on a GPU.
    return model.eval()
