"""A Canary-Qwen-2.5B-sized SALM with random weights, built offline, and the ways of loading it.

Architecture (the published model: a FastConformer encoder from canary-1b-flash, a 2-layer Conformer
modality adapter, Qwen3-1.7B with LoRA on q_proj/v_proj):
- encoder: 32 layers, d_model 1024, 8 heads, 128 mel features, 8x depthwise-striding subsampling;
- Qwen3-1.7B: hidden 2048, 28 layers, 16 query / 8 key-value heads of 128, MLP 6144, a 151,936-entry
  vocabulary, tied embeddings;
- LoRA rank 128 (alpha 256) on the LLM's q_proj and v_proj.

The config layout is testkit/tiny_models.py's, which mirrors the real config.json; the LLM repo's
tokenizer is the tiny one from there (the embedding matrix still has the full 151,936 rows). The
weights are saved in bfloat16, as the published model.safetensors is.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from testkit.tiny_models import (  # noqa: E402
    CANARY_REPO_ID,
    build_tiny_qwen_repo,
    save_canary_repo,
    tiny_salm_config,
    transcribe_prompt,
)

CANARY_FULL = {
    "encoder_layers": 32,
    "adapter_layers": 2,
    "d_model": 1024,
    "n_heads": 8,
    "ff_expansion_factor": 4,
    "subsampling_conv_channels": 256,
    "llm_hidden": 2048,
    "llm_intermediate": 6144,
    "llm_layers": 28,
    "llm_heads": 16,
    "llm_kv_heads": 8,
    "llm_head_dim": 128,
    "llm_vocab": 151936,
    "lora_r": 128,
    "lora_alpha": 256,
}
CANARY_QUICK = {
    "encoder_layers": 1,
    "adapter_layers": 1,
    "d_model": 32,
    "n_heads": 4,
    "ff_expansion_factor": 2,
    "subsampling_conv_channels": 32,
    "llm_hidden": 64,
    "llm_intermediate": 128,
    "llm_layers": 2,
    "llm_heads": 4,
    "llm_kv_heads": 2,
    "llm_head_dim": 16,
    "llm_vocab": 0,  # 0: the tiny tokenizer's own size
    "lora_r": 4,
    "lora_alpha": 8,
}
PUBLISHED_CANARY_PARAMETERS = 2.5e9
# Building holds the float32 model (10.4 GB at full size) and its bfloat16 copy; each load holds the
# float32 model while the 5.2 GB file is mapped. Below this much free memory the benchmark skips it.
CANARY_MEMORY_GIB = {"full": 18.0, "quick": 1.0}
CANARY_CONTENDERS = ["canary_load_model", "canary_from_pretrained", "canary_floor"]


def _resize_llm(llm_dir: Path, sizes: dict[str, int]) -> None:
    """Give the LLM repo's config.json Qwen3-1.7B's dimensions (the tokenizer stays the tiny one)."""
    path = llm_dir / "config.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    config.update(
        hidden_size=sizes["llm_hidden"],
        intermediate_size=sizes["llm_intermediate"],
        num_hidden_layers=sizes["llm_layers"],
        num_attention_heads=sizes["llm_heads"],
        num_key_value_heads=sizes["llm_kv_heads"],
        head_dim=sizes["llm_head_dim"],
        initializer_range=0.02,
        max_position_embeddings=40960,
    )
    config.pop("layer_types", None)  # one entry per layer: rebuilt for the new layer count
    if sizes["llm_vocab"]:
        config["vocab_size"] = sizes["llm_vocab"]
    path.write_text(json.dumps(config, indent=2), encoding="utf-8")


def canary_config(llm_dir: Path, sizes: dict[str, int]) -> dict[str, Any]:
    cfg = tiny_salm_config(str(llm_dir))
    conformer = {
        "d_model": sizes["d_model"],
        "n_heads": sizes["n_heads"],
        "ff_expansion_factor": sizes["ff_expansion_factor"],
    }
    perception = cfg["perception"]
    perception["output_dim"] = sizes["llm_hidden"]
    perception["encoder"].update(
        conformer,
        n_layers=sizes["encoder_layers"],
        subsampling_conv_channels=sizes["subsampling_conv_channels"],
    )
    perception["modality_adapter"].update(
        conformer, feat_in=sizes["d_model"], n_layers=sizes["adapter_layers"]
    )
    cfg["lora"].update(r=sizes["lora_r"], lora_alpha=sizes["lora_alpha"])
    return cfg


def build_canary_repos(workdir: Path, sizes: dict[str, int]) -> dict[str, Any]:
    """What the hub serves for nvidia/canary-qwen-2.5b and Qwen/Qwen3-1.7B (made once)."""
    canary_dir, llm_dir = workdir / "canary-qwen-2.5b", workdir / "qwen3"
    facts_file = workdir / "canary.json"
    if facts_file.exists() and (canary_dir / "model.safetensors").exists():
        return json.loads(facts_file.read_text())
    import torch
    from nemo.collections.speechlm2.models import SALM
    from nemo.utils import logging as nemo_logging

    nemo_logging.setLevel(nemo_logging.ERROR)
    build_tiny_qwen_repo(llm_dir)
    _resize_llm(llm_dir, sizes)
    torch.manual_seed(0)
    model = SALM(canary_config(llm_dir, sizes)).eval()
    parameters = sum(p.numel() for p in model.parameters())
    lora = sum(p.numel() for name, p in model.named_parameters() if ".lora_" in name)
    save_canary_repo(model.to(torch.bfloat16), canary_dir)
    facts = {
        "canary_dir": str(canary_dir),
        "llm_dir": str(llm_dir),
        "parameters": parameters,
        "lora_parameters": lora,
        "safetensors_bytes": (canary_dir / "model.safetensors").stat().st_size,
    }
    facts_file.write_text(json.dumps(facts))
    return facts


def canary_hub_files(facts: dict[str, Any]) -> tuple[dict[str, bytes], dict[str, bytes]]:
    """(canary repo files, LLM repo files) as the hub serves them."""
    canary_dir, llm_dir = Path(facts["canary_dir"]), Path(facts["llm_dir"])
    canary = {name: (canary_dir / name).read_bytes() for name in ("config.json", "model.safetensors")}
    llm = {p.name: p.read_bytes() for p in sorted(llm_dir.iterdir()) if p.is_file()}
    return canary, llm


SEED_FILES = [(CANARY_REPO_ID, "config.json"), (CANARY_REPO_ID, "model.safetensors")]


# --------------------------------------------------------------------------- the contenders


def load_with_loader(args: dict[str, Any]) -> Any:
    import localstt.store
    import model_loader

    localstt.store._default_store = None
    return model_loader.load_model("canary-qwen", config_path=args["config"])


def load_from_pretrained(args: dict[str, Any]) -> Any:
    """What canary-qwen-2.5b's model card shows, from a warm HF cache (HF_HUB_OFFLINE=1)."""
    from nemo.collections.speechlm2.models import SALM

    return SALM.from_pretrained(CANARY_REPO_ID).eval()


def load_floor(args: dict[str, Any]) -> Any:
    """Build the module from the exported config, then read the same safetensors into it."""
    from nemo.collections.speechlm2.models import SALM
    from safetensors.torch import load_file

    folder = Path(args["canary_export"])
    cfg = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    cfg |= {"pretrained_llm": str(folder / "llm_backbone"), "tokenizer_path": str(folder)}
    model = SALM(cfg)
    model.load_state_dict(load_file(folder / "model.safetensors"), strict=False)
    return model.eval()


LOADERS = {
    "canary_load_model": load_with_loader,
    "canary_from_pretrained": load_from_pretrained,
    "canary_floor": load_floor,
}


def first_transcription(model: Any, clip: str) -> int:
    """The model's first generate() on the clip (a few tokens): the number of tokens it returned."""
    import torch

    with torch.inference_mode():
        ids = model.generate(prompts=transcribe_prompt(model, Path(clip)), max_new_tokens=4)
    return int(ids.shape[-1])
