"""A speech-LLM (NeMo's speechlm2 `SALM` class) out of its exported folder, without building random
weights first.

`SALM.from_pretrained` builds every module with random weights (2.5 B of them, in float32: 10 GB and,
on a CPU, most of the load time), then copies the file's weights over them. Here the parameters are
created on the `meta` device (no memory, no random init), the tensors of `model.safetensors` are
mapped (private, copy-on-write: the file is never modified) and become the parameters
(`load_state_dict(assign=True)`), and weights that modules share (Qwen3's tied input and output
embeddings, stored once in the file, whose metadata names the other user) are shared again. The model
is then put in the precision localstt/precision.py chose and moved to the device: it is narrowed
before the move and widened after it, so a bfloat16 file goes to the GPU without ever being float32
in host memory. On a GPU without native bfloat16 the speech encoder ("perception") runs under
float16 autocast and hands float32 to the float32 language model.

The folder is what `SALM.from_pretrained(folder)` reads (NeMo 3.0): the model's `config.json`, the LLM's
tokenizer beside it and its config in `llm_backbone/`. Anything unexpected falls back to
`from_pretrained`, which gives the same model, only slower; `LOCALSTT_FAST_LOAD=0` forces that.
"""

from __future__ import annotations

import gc
import logging
from pathlib import Path
from typing import Any

from localstt.environment import fast_load_problem
from localstt.errors import FastPathUnavailable, LoadError
from localstt.loading.nemo_archive import meta_tensors, rebuild_positional_encodings
from localstt.precision import Precision, autocast_forward, torch_dtype

WEIGHTS_NAME = "model.safetensors"
LLM_BACKBONE_DIR = "llm_backbone"

logger = logging.getLogger(__name__)


def load_salm(export_dir: Path, device: str, dtype: Any) -> tuple[Any, str]:
    """(model in eval mode on `device`, "mapped" or "safetensors").

    `dtype`: a localstt.precision.Precision, or a torch dtype for the whole model.
    """
    from nemo.utils import logging as nemo_logging  # NeMo: ~10 s to import, so not before

    nemo_logging.setLevel(nemo_logging.ERROR)
    problem = fast_load_problem()
    model, method = None, "mapped"
    if problem is None:
        try:
            model = _load_mapped(export_dir)
        except LoadError:
            raise
        except Exception as error:  # internals moved: from_pretrained gives the same model
            problem = f"{type(error).__name__}: {error}"
            gc.collect()
    if model is None:
        from nemo.collections.speechlm2.models import SALM  # NeMo: ~10 s to import, so not before

        logger.warning("note: building %s the slow way (%s)", export_dir.name, problem)
        model, method = SALM.from_pretrained(str(export_dir), local_files_only=True), "safetensors"
    check_safetensors_keys(export_dir, model)
    if isinstance(dtype, Precision):
        precision = dtype
    else:  # the whole model, its language model included, in one dtype
        name = str(dtype).removeprefix("torch.")
        precision = Precision(name, llm=name)
    return place(model.eval(), device, precision), method


def place(model: Any, device: str, precision: Precision) -> Any:
    """`model` on `device` in `precision`: cast before the move when that narrows it, after when it widens."""
    weights = torch_dtype(precision.weights)
    stored = next(p.dtype for p in model.parameters() if p.is_floating_point())
    widen = weights.itemsize > stored.itemsize
    if not widen:
        model.to(dtype=weights)
    model.to(device)
    if widen:
        model.to(dtype=weights)
    if precision.llm not in (None, precision.weights):
        llm = torch_dtype(precision.llm)
        model.llm.to(dtype=llm)
        model.embed_tokens.to(dtype=llm)  # Qwen3's output layer shares this weight
    if precision.encoder_autocast is not None:
        autocast_forward(model.perception, precision.encoder_autocast, precision.llm or precision.weights)
    return model


def salm_config(export_dir: Path) -> dict[str, Any]:
    """canary's config.json pointed at the files beside it, as `from_pretrained(folder)` does."""
    from omegaconf import OmegaConf  # NeMo's config library: with the model, not before

    cfg = OmegaConf.to_container(OmegaConf.load(export_dir / "config.json"))
    assert isinstance(cfg, dict)
    cfg["tokenizer_path"] = str(export_dir)
    cfg["pretrained_llm"] = str(export_dir / LLM_BACKBONE_DIR)
    cfg["pretrained_weights"] = False
    return {str(key): value for key, value in cfg.items()}


def _load_mapped(export_dir: Path) -> Any:
    from accelerate import init_empty_weights  # with the model, not before
    from nemo.collections.speechlm2.models import SALM  # NeMo: ~10 s to import, so not before
    from safetensors import safe_open  # with the model, not before

    if not (export_dir / LLM_BACKBONE_DIR / "config.json").exists():
        raise FastPathUnavailable(f"no {LLM_BACKBONE_DIR}/config.json")
    with init_empty_weights(include_buffers=False):
        model = SALM(salm_config(export_dir))
    with safe_open(str(export_dir / WEIGHTS_NAME), framework="pt", device="cpu") as handle:
        state = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118 (not a dict)
        # safetensors' save_model stores a shared tensor once and notes "other name": "stored name"
        shared = {name: stored for name, stored in (handle.metadata() or {}).items() if stored in state}
    model.load_state_dict(state, strict=False, assign=True)
    for name, stored in shared.items():  # assign=True replaced the stored name's parameter only
        owner, _, attribute = name.rpartition(".")
        setattr(model.get_submodule(owner), attribute, model.get_parameter(stored))
    rebuild_positional_encodings(model)
    if left := meta_tensors(model):
        raise FastPathUnavailable(f"not in {WEIGHTS_NAME}: {', '.join(left[:5])}")
    return model


def check_safetensors_keys(folder: Path, model: Any) -> None:
    """SALM loads with strict=False; make sure the file really covers the model (tied weights aside)."""
    from safetensors import safe_open  # with the model, not before

    file_keys: set[str] = set()
    for weights in sorted(folder.glob("*.safetensors")):
        with safe_open(str(weights), framework="pt") as handle:
            file_keys.update(handle.keys())
    state = model.state_dict()
    loaded_storage = {state[key].data_ptr() for key in file_keys & set(state)}
    missing = {key for key in set(state) - file_keys if state[key].data_ptr() not in loaded_storage}
    unexpected = file_keys - set(state)
    if missing or unexpected:
        example = sorted(missing or unexpected)[0]
        raise LoadError(
            f"The weights in {folder} do not fit the model built from its config.json "
            f"({len(missing)} missing, {len(unexpected)} unexpected, e.g. '{example}'); "
            "the export may be from another model version."
        )
