"""Random-weight models with the real architectures, built offline from the configs written here.

* Parakeet-TDT-0.6B-v2: FastConformer-XL encoder (24 layers, d_model 1024, 8 heads, feed-forward 4096,
  128 mel features, 8x dw_striding with 256 channels, kernel 9), TDT prediction network (640 hidden,
  2 LSTM layers) and joint (640 hidden, durations 0-4), a 1024-piece sentencepiece BPE tokenizer.
  That comes to 617.8 M parameters (the model card says 0.6 B) and a 2.47 GB `.nemo`.
* `--quick`: the same classes at toy size (d_model 64, 2 layers, 96 pieces), for the smoke test.

The section layout, targets and preprocessor come from testkit/tiny_models.py, which mirrors the real
model_config.yaml; only the sizes differ. Nothing is downloaded.

Greedy TDT decoding of random weights emits a token at nearly every step (up to `max_symbols` = 10
per 80 ms frame), so the decoder loop, not the encoder, would dominate every transcription (44 of 52 s
on 60 s of audio, measured here). Real speech has about 4 tokens per second. So the joint's blank bias
is raised until the model emits about that many tokens on espeak-ng speech (`calibrate_blank_bias`).
"""

from __future__ import annotations

import json
import random
import subprocess
from pathlib import Path
from typing import Any

from testkit.tiny_models import tiny_parakeet_config, train_tiny_spm_tokenizer  # noqa: E402

FULL = {
    "d_model": 1024,
    "n_layers": 24,
    "n_heads": 8,
    "ff_expansion_factor": 4,
    "subsampling_conv_channels": 256,
    "pred_hidden": 640,
    "pred_rnn_layers": 2,
    "joint_hidden": 640,
    "vocab_size": 1024,
}
QUICK = {
    "d_model": 64,
    "n_layers": 2,
    "n_heads": 4,
    "ff_expansion_factor": 2,
    "subsampling_conv_channels": 32,
    "pred_hidden": 64,
    "pred_rnn_layers": 1,
    "joint_hidden": 64,
    "vocab_size": 96,
}
PUBLISHED_PARAMETERS = 0.6e9  # "parakeet-tdt-0.6b-v2 is a 600-million-parameter ... model"
SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "Speech recognition turns recorded voices into written text, one word at a time.",
    "Please send the quarterly report to the finance team before Friday afternoon.",
    "It was a bright cold day in April, and the clocks were striking thirteen.",
]


def _synthetic_corpus(lines: int = 4000) -> list[str]:
    """Enough varied English-like text for a 1024-piece BPE vocabulary (deterministic)."""
    rng = random.Random(0)
    onsets = ["", "b", "c", "d", "f", "g", "h", "k", "l", "m", "n", "p", "r", "s", "t", "w", "st", "tr"]
    nuclei = ["a", "e", "i", "o", "u", "ai", "ea", "ou", "ee"]
    codas = ["", "n", "r", "s", "t", "l", "nd", "ng", "ck"]
    words = [
        "".join(rng.choice(onsets) + rng.choice(nuclei) + rng.choice(codas) for _ in range(rng.randint(1, 3)))
        for _ in range(3000)
    ]
    text = [
        " ".join(rng.choice(words) for _ in range(rng.randint(5, 15))).capitalize() + "."
        for _ in range(lines)
    ]
    return SENTENCES * 20 + text


def build_tokenizer(folder: Path, vocab_size: int) -> Path:
    """A sentencepiece BPE tokenizer (tokenizer.model + vocab.txt, as NeMo wants), built once."""
    if (folder / "tokenizer.model").exists():
        return folder
    return train_tiny_spm_tokenizer(folder, vocab_size, _synthetic_corpus())


def parakeet_config(tokenizer_dir: Path, sizes: dict[str, int]) -> dict[str, Any]:
    cfg = tiny_parakeet_config(tokenizer_dir, d_model=sizes["d_model"])
    cfg["encoder"].update(
        n_layers=sizes["n_layers"],
        n_heads=sizes["n_heads"],
        ff_expansion_factor=sizes["ff_expansion_factor"],
        subsampling_conv_channels=sizes["subsampling_conv_channels"],
    )
    cfg["decoder"]["prednet"].update(
        pred_hidden=sizes["pred_hidden"], pred_rnn_layers=sizes["pred_rnn_layers"]
    )
    cfg["joint"]["jointnet"].update(joint_hidden=sizes["joint_hidden"])
    cfg["model_defaults"].update(pred_hidden=sizes["pred_hidden"], joint_hidden=sizes["joint_hidden"])
    return cfg


TOKENS_PER_SECOND = 4.0


def calibrate_blank_bias(model: Any, speech: Path, tokens_per_second: float = TOKENS_PER_SECOND) -> float:
    """Raise the blank logit's bias until greedy decoding emits about `tokens_per_second` on `speech`."""
    import soundfile as sf
    import torch

    samples, _ = sf.read(str(speech), dtype="float32")
    wanted = tokens_per_second * len(samples) / 16000
    layer, blank = model.joint.joint_net[-1], model.decoder.blank_idx
    device = layer.weight.device
    with torch.inference_mode():
        signal = torch.from_numpy(samples)[None].to(device)
        length = torch.tensor([signal.shape[1]], device=device)
        features, lengths = model.preprocessor(input_signal=signal, length=length)
        encoded, encoded_lengths = model.encoder(audio_signal=features, length=lengths)
        base = float(layer.bias[blank])

        def emitted(shift: float) -> int:
            layer.bias[blank] = base + shift
            hypotheses = model.decoding.rnnt_decoder_predictions_tensor(encoded, encoded_lengths)
            return len(hypotheses[0].y_sequence)

        low, high = 0.0, 1.0
        while emitted(high) > wanted and high < 1e4:
            low, high = high, high * 2
        for _ in range(12):
            middle = (low + high) / 2
            low, high = (middle, high) if emitted(middle) > wanted else (low, middle)
        layer.bias[blank] = base + high
    return high


def build_parakeet_nemo(workdir: Path, sizes: dict[str, int], device: str = "cpu") -> tuple[Path, int, float]:
    """Save a random-weight Parakeet-shaped model as a .nemo (once): (path, parameters, blank shift).
    `device`: where the blank bias is calibrated (decoding random weights is slow on a CPU)."""
    nemo = workdir / "parakeet-tdt-0.6b-v2.nemo"
    facts = workdir / "model.json"
    if nemo.exists() and facts.exists():
        known = json.loads(facts.read_text())
        return nemo, known["parameters"], known["blank_bias_shift"]
    import torch
    from nemo.collections.asr.models import EncDecRNNTBPEModel
    from nemo.utils import logging as nemo_logging
    from omegaconf import OmegaConf

    nemo_logging.setLevel(nemo_logging.ERROR)
    tokenizer = build_tokenizer(workdir / "tokenizer", sizes["vocab_size"])
    torch.manual_seed(0)
    model = EncDecRNNTBPEModel(cfg=OmegaConf.create(parakeet_config(tokenizer, sizes))).eval()
    shift = calibrate_blank_bias(model.to(device), make_speech(workdir, 30.0))
    model = model.cpu()
    parameters = sum(p.numel() for p in model.parameters())
    partial = nemo.with_suffix(".partial")
    model.save_to(str(partial))
    partial.rename(nemo)
    facts.write_text(json.dumps({"parameters": parameters, "blank_bias_shift": shift}))
    return nemo, parameters, shift


def make_speech(workdir: Path, seconds: float) -> Path:
    """espeak-ng speech, repeated to `seconds`, as a 16 kHz mono 16-bit WAV (made once)."""
    target = workdir / f"speech-{seconds:g}s.wav"
    if target.exists():
        return target
    raw, once = workdir / "espeak.wav", workdir / "espeak-16k.wav"
    subprocess.run(["espeak-ng", "-w", str(raw), " ".join(SENTENCES)], check=True)
    subprocess.run(["sox", str(raw), "-r", "16000", "-c", "1", "-b", "16", str(once)], check=True)
    import soundfile as sf

    samples, rate = sf.read(once, dtype="int16")
    repeats = int(seconds * rate // len(samples)) + 1
    import numpy as np

    sf.write(target, np.tile(samples, repeats)[: int(seconds * rate)], rate, subtype="PCM_16")
    return target
