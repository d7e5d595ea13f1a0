"""A tiny ``EncDecMultiTaskModel`` laid out like nvidia/canary-1b-v2, built offline.

canary-1b-v2 is an attention encoder-decoder (FastConformer encoder, pre-LN Transformer decoder,
``prompt_format: canary2``) with one unified SentencePiece BPE tokenizer (16384 pieces, the special
tokens inside it, as its prompts show) wrapped by ``CanaryBPETokenizer`` (``tokenizer.type: bpe``
with ``custom_tokenizer``). Its .nemo also carries a
second model, a FastConformer CTC model over the same tokenizer, as the members
``timestamps_asr_model_config.yaml`` and ``timestamps_asr_model_weights.ckpt``;
``EncDecMultiTaskModel.__init__`` restores it (``__restore_timestamps_asr_model``) and
``transcribe(..., timestamps=True)`` force-aligns the decoder's text against its CTC output.

Here: the same classes, sections and targets, toy-sized:

* ``build_tiny_canary_tokenizer``: a SentencePiece BPE model with canary2's special tokens first
  (``<|endoftext|>`` = 3, ``<|startoftranscript|>`` = 4, ``<|pnc|>`` = 5, ``<|startofcontext|>`` = 7,
  ``<|noitn|>`` = 9, ``<|notimestamp|>`` = 11, ``<|nodiarize|>`` = 13, ``<|emo:undefined|>`` = 16,
  as in canary's tokenizers) and the 25 language tokens, then pieces of English and German text.
* ``build_tiny_canary_multitask``: the AED model (CPU, eval mode, random weights).
* ``build_tiny_timestamps_ctc``: the nested ``EncDecCTCModelBPE`` over the same tokenizer.
* ``save_canary_nemo``: ``save_to`` the AED model, then add the CTC model to the archive as the two
  ``timestamps_asr_model_*`` members (its tokenizer entries naming the AED model's tokenizer files).

scripts/make_tiny_canary_1b.py trains both and writes tests/fixtures/tiny-canary-1b-v2.nemo.
Nothing here downloads anything. Heavy imports (torch, NeMo) happen inside the functions.
"""

from __future__ import annotations

import hashlib
import io
import re
import shutil
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from testkit import tiny_models

if TYPE_CHECKING:
    from nemo.collections.asr.models import EncDecCTCModelBPE, EncDecMultiTaskModel

FIXTURES = tiny_models.FIXTURES
PHRASE_WAV = tiny_models.PHRASE_WAV  # English, espeak-ng en-us at 150 wpm
TINY_CANARY_1B_V2_NEMO = tiny_models.TINY_CANARY_1B_V2_NEMO
PHRASE_DE_WAV = tiny_models.PHRASE_DE_WAV  # German, espeak-ng de at 150 wpm (same sox command)
CANARY_1B_V2_REPO_ID = tiny_models.CANARY_1B_V2_REPO_ID

# The phrase in both languages, each the other's translation; (language, espeak-ng voice).
PHRASES = {
    "en": "The quick brown fox jumps over the lazy dog.",
    "de": "Der schnelle braune Fuchs springt über den faulen Hund.",
}
VOICES = {"en": "en-us", "de": "de"}
RATE_WPM = 150

# canary-1b-v2's 25 languages (ASR in each; translation English <-> each of the others).
LANGUAGES = [
    "bg", "cs", "da", "de", "el", "en", "es", "et", "fi", "fr", "hr", "hu", "it",
    "lt", "lv", "mt", "nl", "pl", "pt", "ro", "ru", "sk", "sl", "sv", "uk",
]  # fmt: skip

# Special tokens, ids 1.. after <unk> = 0, in the order canary's tokenizers have them (the ids of
# those canary2 prompts use match canary-1b-flash/-v2); then the emotions, the task tokens and the
# languages.
SPECIAL_TOKENS = [
    "<|nospeech|>", "<pad>", "<|endoftext|>", "<|startoftranscript|>", "<|pnc|>", "<|nopnc|>",
    "<|startofcontext|>", "<|itn|>", "<|noitn|>", "<|timestamp|>", "<|notimestamp|>",
    "<|diarize|>", "<|nodiarize|>", "<|spkchange|>", "<|audioseparator|>", "<|emo:undefined|>",
    "<|emo:neutral|>", "<|emo:happy|>", "<|emo:sad|>", "<|emo:angry|>",
    "<|transcribe|>", "<|translate|>",
    *(f"<|{lang}|>" for lang in LANGUAGES),
]  # fmt: skip

# Text the tokenizer is trained on: both phrases and some more common words of each language.
TOKENIZER_CORPUS = [
    PHRASES["en"],
    PHRASES["de"],
    "the quick brown fox jumps over the lazy dog",
    "der schnelle braune Fuchs springt über den faulen Hund",
    "Hello world. This is a test of the speech recognition system.",
    "Hallo Welt. Das ist ein Test der Spracherkennung.",
]

# ``prompt_defaults``: canary2's optional slots as its prompt function fills them (no emotion, PnC,
# no ITN, no timestamp tokens, no diarization), plus English as both languages, so that a prompt
# can be built when transcribe() is given no languages.
PROMPT_DEFAULTS = [
    {
        "role": "user",
        "slots": {
            "source_lang": "en",
            "target_lang": "en",
            "decodercontext": "",
            "emotion": "<|emo:undefined|>",
            "pnc": "<|pnc|>",
            "itn": "<|noitn|>",
            "timestamp": "<|notimestamp|>",
            "diarize": "<|nodiarize|>",
        },
    }
]


def build_tiny_canary_tokenizer(out_dir: Path, vocab_size: int = 160) -> Path:
    """A SentencePiece BPE tokenizer like canary-1b-v2's: the special tokens as user-defined symbols
    (encoded from text and decoded back as text, which is what ``CanaryBPETokenizer`` and the
    canary2 prompt format rely on), no SentencePiece BOS/EOS. ``out_dir`` gets tokenizer.model,
    tokenizer.vocab and vocab.txt."""
    from nemo.collections.common.tokenizers.sentencepiece_tokenizer import create_spt_model

    out_dir.mkdir(parents=True, exist_ok=True)
    corpus = out_dir / "corpus.txt"
    corpus.write_text("\n".join(TOKENIZER_CORPUS * 4) + "\n", encoding="utf-8")
    create_spt_model(
        str(corpus),
        vocab_size=vocab_size,
        sample_size=-1,
        do_lower_case=False,
        tokenizer_type="bpe",
        output_dir=str(out_dir),
        user_defined_symbols=SPECIAL_TOKENS,
    )
    corpus.unlink()
    _drop_build_paths(out_dir / "tokenizer.model")
    return out_dir


def _drop_build_paths(model_file: Path) -> None:
    """SentencePiece keeps the training input's and output's paths in the model: name them without
    the build folder, so that the same corpus gives the same bytes wherever it was built."""
    from sentencepiece import sentencepiece_model_pb2

    proto = sentencepiece_model_pb2.ModelProto()  # type: ignore[attr-defined]
    proto.ParseFromString(model_file.read_bytes())
    del proto.trainer_spec.input[:]
    proto.trainer_spec.input.append("corpus.txt")
    proto.trainer_spec.model_prefix = "tokenizer"
    model_file.write_bytes(proto.SerializeToString())


def _preprocessor() -> dict[str, Any]:
    # fmt: off
    return dict(
        _target_="nemo.collections.asr.modules.AudioToMelSpectrogramPreprocessor",
        sample_rate=16000, normalize="per_feature", window_size=0.025, window_stride=0.01,
        window="hann", features=128, n_fft=512, log=True, frame_splicing=1, dither=1.0e-05,
        pad_to=0, pad_value=0.0,
    )
    # fmt: on


def _fast_conformer(d_model: int, n_layers: int, use_bias: bool) -> dict[str, Any]:
    # fmt: off
    return dict(
        _target_="nemo.collections.asr.modules.ConformerEncoder", feat_in=128, feat_out=-1,
        n_layers=n_layers, d_model=d_model, use_bias=use_bias, subsampling="dw_striding",
        subsampling_factor=8, subsampling_conv_channels=32, causal_downsampling=False,
        reduction=None, reduction_position=None, reduction_factor=1, ff_expansion_factor=2,
        self_attention_model="rel_pos", n_heads=4, att_context_size=[-1, -1],
        att_context_style="regular", xscaling=False, untie_biases=True, pos_emb_max_len=5000,
        conv_kernel_size=9, conv_norm_type="batch_norm", conv_context_size=None, dropout=0.1,
        dropout_pre_encoder=0.1, dropout_emb=0.0, dropout_att=0.1,
        stochastic_depth_drop_prob=0.0, stochastic_depth_mode="linear",
        stochastic_depth_start_layer=1,
    )
    # fmt: on


def _tokenizer_cfg(tokenizer_dir: Path) -> dict[str, Any]:
    return {
        "dir": str(tokenizer_dir),
        "type": "bpe",
        "custom_tokenizer": {
            "_target_": "nemo.collections.common.tokenizers.canary_tokenizer.CanaryBPETokenizer"
        },
    }


def tiny_canary_multitask_config(tokenizer_dir: Path, d_model: int = 64) -> dict[str, Any]:
    """canary-1b-v2's config (same sections, targets, preprocessor, prompt format; encoder and
    decoder of the same width, so ``encoder_decoder_proj`` is an Identity as in the real model),
    toy-sized: 2 encoder layers, 2 decoder layers."""
    stub = dict(use_lhotse=True, manifest_filepath=None, sample_rate=16000, batch_size=4)
    stub |= dict(shuffle=False, num_workers=0, pin_memory=False, use_bucketing=False)
    stub |= dict(defer_setup=True)  # no manifests: NeMo would build lhotse loaders at __init__
    # fmt: off
    return {
        "sample_rate": 16000,
        "label_smoothing": 0.0,
        "context_len_for_AR_decoding": 5,
        "log_prediction": False,
        "prompt_format": "canary2",
        "prompt_defaults": PROMPT_DEFAULTS,
        "model_defaults": dict(asr_enc_hidden=d_model, lm_enc_hidden=d_model, lm_dec_hidden=d_model),
        "train_ds": dict(stub, shuffle=True),
        "validation_ds": dict(stub, use_start_end_token=True),
        "test_ds": dict(stub, use_start_end_token=True),
        "tokenizer": _tokenizer_cfg(tokenizer_dir),
        "preprocessor": _preprocessor(),
        "spec_augment": dict(
            _target_="nemo.collections.asr.modules.SpectrogramAugmentation",
            freq_masks=2, time_masks=10, freq_width=27, time_width=0.05,
        ),
        "encoder": _fast_conformer(d_model, 2, use_bias=True),
        "transf_encoder": dict(
            _target_="nemo.collections.asr.modules.transformer.transformer_encoders.TransformerEncoder",
            num_layers=0, hidden_size=d_model, inner_size=4 * d_model, num_attention_heads=4,
            ffn_dropout=0.1, attn_score_dropout=0.1, attn_layer_dropout=0.1, mask_future=False,
            pre_ln=True, pre_ln_final_layer_norm=True,
        ),
        "transf_decoder": dict(
            _target_="nemo.collections.asr.modules.transformer.get_nemo_transformer",
            model_name=None, pretrained=False, encoder=None, pre_ln_final_layer_norm=True,
            config_dict=dict(
                max_sequence_length=128, num_token_types=0, embedding_dropout=0.1,
                learn_positional_encodings=False, hidden_size=d_model, inner_size=2 * d_model,
                num_layers=2, num_attention_heads=4, ffn_dropout=0.1, attn_score_dropout=0.1,
                attn_layer_dropout=0.1, hidden_act="relu", pre_ln=True, vocab_size=None,
            ),
        ),
        "head": dict(
            _target_="nemo.collections.asr.parts.submodules.token_classifier.TokenClassifier",
            num_layers=1, activation="relu", log_softmax=True, hidden_size=d_model,
            num_classes=None, dropout=0.0, use_transformer_init=True,
        ),
        "decoding": dict(
            strategy="beam", return_best_hypothesis=True,
            beam=dict(beam_size=1, len_pen=0.0, max_generation_delta=50),
        ),
        "loss": dict(
            _target_="nemo.collections.common.losses.smoothed_cross_entropy.SmoothedCrossEntropyLoss",
            label_smoothing=0.0, pad_id=None,
        ),
        "optim": dict(
            name="adamw", lr=3e-4, betas=[0.9, 0.98], weight_decay=1e-3,
            sched=dict(name="InverseSquareRootAnnealing", warmup_steps=2500, min_lr=1e-6),
        ),
        "target": "nemo.collections.asr.models.aed_multitask_models.EncDecMultiTaskModel",
    }
    # fmt: on


def tiny_timestamps_ctc_config(tokenizer_dir: Path, d_model: int = 48) -> dict[str, Any]:
    """The nested timestamps model of canary-1b-v2 (a FastConformer CTC model, ``ConvASRDecoder``
    over the canary tokenizer plus blank, 128 mel features, per_feature), toy-sized."""
    stub = dict(manifest_filepath=None, sample_rate=16000, batch_size=4, shuffle=False)
    stub |= dict(use_start_end_token=False, num_workers=0, pin_memory=False)
    # fmt: off
    return {
        "sample_rate": 16000,
        "log_prediction": False,
        "ctc_reduction": "mean_volume",
        "skip_nan_grad": False,
        "train_ds": dict(stub, shuffle=True),
        "validation_ds": dict(stub),
        "test_ds": dict(stub),
        "tokenizer": _tokenizer_cfg(tokenizer_dir),
        "preprocessor": _preprocessor(),
        "spec_augment": dict(
            _target_="nemo.collections.asr.modules.SpectrogramAugmentation",
            freq_masks=2, time_masks=10, freq_width=27, time_width=0.05,
        ),
        "encoder": _fast_conformer(d_model, 1, use_bias=False),
        "decoder": dict(
            _target_="nemo.collections.asr.modules.ConvASRDecoder", feat_in=d_model,
            num_classes=-1, vocabulary=[],
        ),
        "interctc": dict(loss_weights=[], apply_at_layers=[]),
        "decoding": dict(strategy="greedy_batch", greedy=dict(max_symbols=10)),
        "optim": dict(name="adamw", lr=1e-3, betas=[0.9, 0.98], weight_decay=1e-3),
        "target": "nemo.collections.asr.models.ctc_bpe_models.EncDecCTCModelBPE",
    }
    # fmt: on


def build_tiny_canary_multitask(workdir: Path, d_model: int = 64) -> EncDecMultiTaskModel:
    """A randomly initialised tiny canary-1b-v2 (CPU, eval mode). Its tokenizer is trained into
    ``workdir/tokenizer`` unless one is there already."""
    from nemo.collections.asr.models import EncDecMultiTaskModel
    from omegaconf import OmegaConf

    tokenizer_dir = workdir / "tokenizer"
    if not (tokenizer_dir / "tokenizer.model").exists():
        build_tiny_canary_tokenizer(tokenizer_dir)
    cfg = OmegaConf.create(tiny_canary_multitask_config(tokenizer_dir, d_model=d_model))
    with _no_nested_restore():
        model = EncDecMultiTaskModel(cfg=cfg)
    return model.eval()


def build_tiny_timestamps_ctc(workdir: Path, d_model: int = 48) -> EncDecCTCModelBPE:
    """The nested CTC timestamps model over ``workdir/tokenizer`` (built first if missing)."""
    from nemo.collections.asr.models import EncDecCTCModelBPE
    from omegaconf import OmegaConf

    tokenizer_dir = workdir / "tokenizer"
    if not (tokenizer_dir / "tokenizer.model").exists():
        build_tiny_canary_tokenizer(tokenizer_dir)
    cfg = OmegaConf.create(tiny_timestamps_ctc_config(tokenizer_dir, d_model=d_model))
    model = EncDecCTCModelBPE(cfg=cfg)
    return model.eval()


@contextmanager
def _no_nested_restore() -> Iterator[None]:
    """``EncDecMultiTaskModel.__init__`` looks for the timestamps model in whatever .nemo the
    process restored last (``AppState().model_restore_path``): a model built from a config after a
    restore would otherwise pick up that file's members."""
    from nemo.utils.app_state import AppState

    state = AppState()
    saved = (state.model_restore_path, state.nemo_file_folder)
    state.model_restore_path, state.nemo_file_folder = None, None
    try:
        yield
    finally:
        state.model_restore_path, state.nemo_file_folder = saved


TIMESTAMPS_CONFIG = "timestamps_asr_model_config.yaml"
TIMESTAMPS_WEIGHTS = "timestamps_asr_model_weights.ckpt"


def save_canary_nemo(model: EncDecMultiTaskModel, ctc_model: EncDecCTCModelBPE, nemo_path: Path) -> Path:
    """``model.save_to`` plus the CTC timestamps model as the members ``timestamps_asr_model_config
    .yaml`` (its tokenizer entries name the AED model's tokenizer members) and
    ``timestamps_asr_model_weights.ckpt`` (a state dict), as in canary-1b-v2.nemo.

    The archive is then made reproducible: NeMo names artifacts ``<uuid4 hex>_<file>``; here the
    hex is the start of the file's sha256 instead; ``tokenizer.dir`` (a build folder, not read on
    restore since the three tokenizer paths are given) is null; members have a fixed mtime/owner.
    """
    from omegaconf import OmegaConf

    nemo_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        plain = tmp / "plain.nemo"
        model.save_to(str(plain))
        files: dict[str, bytes] = {}
        with tarfile.open(plain, "r:") as tar:
            for member in tar.getmembers():
                if (f := tar.extractfile(member)) is not None:
                    files[Path(member.name).name] = f.read()
        renames = {
            name: f"{hashlib.sha256(data).hexdigest()[:32]}_{name[33:]}"
            for name, data in files.items()
            if re.fullmatch(r"[0-9a-f]{32}_.+", name)
        }
        main_cfg = OmegaConf.create(files.pop("model_config.yaml").decode("utf-8"))
        ctc_cfg = OmegaConf.create(OmegaConf.to_container(ctc_model.cfg, resolve=True))
        paths = {
            key: "nemo:" + renames[main_cfg.tokenizer[key].removeprefix("nemo:")]
            for key in ("model_path", "vocab_path", "spe_tokenizer_vocab")
        }
        for cfg in (main_cfg, ctc_cfg):
            cfg.tokenizer.dir = None
            cfg.tokenizer.update(paths)
        members = {renames.get(name, name): data for name, data in files.items()}
        members["model_config.yaml"] = OmegaConf.to_yaml(main_cfg).encode("utf-8")
        members[TIMESTAMPS_CONFIG] = OmegaConf.to_yaml(ctc_cfg).encode("utf-8")
        members[TIMESTAMPS_WEIGHTS] = _torch_bytes({k: v.cpu() for k, v in ctc_model.state_dict().items()})
        out = tmp / "out.nemo"
        with tarfile.open(out, "w:", format=tarfile.GNU_FORMAT) as tar:
            for name in sorted(members):
                data = members[name]
                info = tarfile.TarInfo(f"./{name}")
                info.size, info.mtime, info.mode = len(data), ARCHIVE_MTIME, 0o644
                tar.addfile(info, io.BytesIO(data))
        shutil.move(str(out), nemo_path)
    return nemo_path


ARCHIVE_MTIME = 1_700_000_000  # members' fixed mtime (2023-11-14)


def _torch_bytes(obj: Any) -> bytes:
    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()
