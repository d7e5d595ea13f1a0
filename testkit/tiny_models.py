"""Tiny, offline-built models of the same NeMo classes the app loads.

* ``build_tiny_parakeet``: an ``EncDecRNNTBPEModel`` laid out like parakeet-tdt-0.6b-v2
  (FastConformer encoder, TDT decoder/joint, 128 mel features), a few hundred kB of weights.
* ``build_tiny_salm`` / ``build_tiny_canary_repos``: a ``SALM`` laid out like canary-qwen-2.5b,
  with a tiny Qwen3 LLM and a byte-level BPE tokenizer, saved as the two hub repos
  "nvidia/canary-qwen-2.5b" and "Qwen/Qwen3-1.7B" would serve them.
* ``assemble_offline_salm_folder``: reference layout of one self-contained folder that
  ``SALM.from_pretrained(folder)`` (NeMo 3.0) loads with no hub access at all.

Nothing here downloads anything. Heavy imports (torch, NeMo) happen inside the functions.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nemo.collections.asr.models import EncDecRNNTBPEModel
    from nemo.collections.speechlm2.models import SALM

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures"
TINY_PARAKEET_NEMO = FIXTURES / "tiny-parakeet.nemo"
TINY_SORTFORMER_NEMO = FIXTURES / "tiny-sortformer.nemo"  # scripts/make_tiny_sortformer.py
# Stands in for the multilingual v3: knows the phrase in English and in German (espeak-ng voice de),
# hearing which by itself (scripts/make_tiny_parakeet_v3.py).
TINY_PARAKEET_V3_NEMO = FIXTURES / "tiny-parakeet-v3.nemo"
PHRASE_WAV = FIXTURES / "phrase.wav"
PHRASE_TXT = FIXTURES / "phrase.txt"
PHRASE_DE_WAV = FIXTURES / "phrase-de.wav"
# Stands in for Canary-1B-v2: the phrase in English and German, each transcribed or translated into
# the other, with its timestamps aligner nested in the archive (scripts/make_tiny_canary_1b.py).
TINY_CANARY_1B_V2_NEMO = FIXTURES / "tiny-canary-1b-v2.nemo"
PHRASE_DE_TXT = FIXTURES / "phrase-de.txt"
# Two espeak-ng voices taking turns with sentences of the phrase's words: both tiny models are
# trained on them (scripts/make_tiny_parakeet.py, scripts/make_tiny_sortformer.py), which write
# and check fixtures/phrase-dialogue.{wav,json}, so that the end-to-end speaker tests know every
# word and its speaker. Voice 0 is en-us at pitch 40, voice 1 the female en-us+f3 at pitch 80.
SPEAKER_VOICES = [("en-us", ["-p", "40"]), ("en-us+f3", ["-p", "80"])]
PHRASE_DIALOGUE = [
    (0, "The quick brown fox jumps over the lazy dog."),
    (1, "The lazy dog jumps over the quick brown fox."),
    (0, "The quick brown fox jumps over the lazy dog."),
    (1, "The lazy dog jumps over the quick brown fox."),
]
PHRASE_DIALOGUE_GAPS = [0.6, 0.5, 0.7]
PHRASE_DIALOGUE_WAV = FIXTURES / "phrase-dialogue.wav"
PHRASE_DIALOGUE_JSON = FIXTURES / "phrase-dialogue.json"

PARAKEET_REPO_ID = "nvidia/parakeet-tdt-0.6b-v2"
PARAKEET_V3_REPO_ID = "nvidia/parakeet-tdt-0.6b-v3"
CANARY_1B_V2_REPO_ID = "nvidia/canary-1b-v2"
CANARY_REPO_ID = "nvidia/canary-qwen-2.5b"
QWEN_REPO_ID = "Qwen/Qwen3-1.7B"
SORTFORMER_REPO_ID = "nvidia/diar_streaming_sortformer_4spk-v2"

TDT_DURATIONS = [0, 1, 2, 3, 4]
# Text the tiny tokenizers are trained on (the phrase plus some common English).
TOKENIZER_CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "the quick brown fox jumps over the lazy dog",
    "Hello world. This is a test of the speech recognition system.",
    "Transcribe the following audio, please.",
]


# --------------------------------------------------------------------------- parakeet


def train_tiny_spm_tokenizer(out_dir: Path, vocab_size: int = 96, lines: list[str] | None = None) -> Path:
    """Train a sentencepiece BPE tokenizer on `lines` (default: the tiny corpus); ``out_dir`` gets
    tokenizer.model and vocab.txt."""
    from nemo.collections.common.tokenizers.sentencepiece_tokenizer import create_spt_model

    out_dir.mkdir(parents=True, exist_ok=True)
    corpus = out_dir / "corpus.txt"
    corpus.write_text("\n".join(TOKENIZER_CORPUS * 4 if lines is None else lines) + "\n", encoding="utf-8")
    create_spt_model(
        str(corpus),
        vocab_size=vocab_size,
        sample_size=-1,
        do_lower_case=False,
        tokenizer_type="bpe",
        output_dir=str(out_dir),
    )
    corpus.unlink()
    return out_dir


def _conformer(feat_in: int, d_model: int, n_layers: int, subsampling_factor: int) -> dict[str, Any]:
    # fmt: off
    return dict(
        _target_="nemo.collections.asr.modules.ConformerEncoder", feat_in=feat_in, feat_out=-1,
        n_layers=n_layers, d_model=d_model, subsampling="dw_striding",
        subsampling_factor=subsampling_factor,
        subsampling_conv_channels=32 if subsampling_factor > 1 else -1,
        causal_downsampling=False, ff_expansion_factor=2, self_attention_model="rel_pos",
        n_heads=4, att_context_size=[-1, -1], xscaling=True, untie_biases=True,
        pos_emb_max_len=5000, conv_kernel_size=9, conv_norm_type="batch_norm",
        conv_context_size=None, dropout=0.1, dropout_pre_encoder=0.1, dropout_emb=0.0,
        dropout_att=0.1,
    )
    # fmt: on


def tiny_parakeet_config(tokenizer_dir: Path, d_model: int = 64) -> dict[str, Any]:
    """parakeet-tdt-0.6b-v2's config (same sections, targets and preprocessor), toy-sized."""
    durs = list(TDT_DURATIONS)
    stub = dict(manifest_filepath=None, sample_rate=16000, batch_size=4, shuffle=False)
    stub |= dict(use_start_end_token=False, num_workers=0, pin_memory=False)
    # fmt: off
    return {
        "sample_rate": 16000,
        "compute_eval_loss": False,
        "log_prediction": False,
        "rnnt_reduction": "mean_volume",
        "skip_nan_grad": False,
        "model_defaults": dict(
            enc_hidden=d_model, pred_hidden=d_model, joint_hidden=d_model,
            tdt_durations=durs, num_tdt_durations=len(durs),
        ),
        "train_ds": dict(stub, shuffle=True),
        "validation_ds": dict(stub),  # transcribe() fails without it
        "test_ds": dict(stub),
        "tokenizer": {"dir": str(tokenizer_dir), "type": "bpe"},
        "preprocessor": dict(
            _target_="nemo.collections.asr.modules.AudioToMelSpectrogramPreprocessor",
            sample_rate=16000, normalize="per_feature", window_size=0.025, window_stride=0.01,
            window="hann", features=128, n_fft=512, log=True, frame_splicing=1, dither=1.0e-05,
            pad_to=0, pad_value=0.0,
        ),
        "spec_augment": dict(
            _target_="nemo.collections.asr.modules.SpectrogramAugmentation",
            freq_masks=2, time_masks=10, freq_width=27, time_width=0.05,
        ),
        "encoder": dict(
            _conformer(128, d_model, 2, 8), use_bias=False, xscaling=False,
            att_context_style="regular", stochastic_depth_drop_prob=0.0,
            stochastic_depth_mode="linear", stochastic_depth_start_layer=1,
        ),
        "decoder": dict(
            _target_="nemo.collections.asr.modules.RNNTDecoder", normalization_mode=None,
            random_state_sampling=False, blank_as_pad=True,
            prednet=dict(pred_hidden=d_model, pred_rnn_layers=1, t_max=None, dropout=0.2),
        ),
        "joint": dict(
            _target_="nemo.collections.asr.modules.RNNTJoint", log_softmax=None,
            preserve_memory=False, fuse_loss_wer=True, fused_batch_size=4,
            jointnet=dict(joint_hidden=d_model, activation="relu", dropout=0.2),
            num_extra_outputs=len(durs),  # TDT: one extra logit per duration
        ),
        "decoding": dict(
            strategy="greedy_batch", model_type="tdt", durations=durs,
            greedy=dict(max_symbols=10),
            beam=dict(beam_size=2, return_best_hypothesis=False, score_norm=True),
        ),
        "loss": dict(
            loss_name="tdt",  # numba-CUDA only; training on CPU needs another loss
            tdt_kwargs=dict(fastemit_lambda=0.0, clamp=-1.0, durations=durs, sigma=0.02, omega=0.1),
        ),
        "optim": dict(name="adamw", lr=1.0e-3, betas=[0.9, 0.98], weight_decay=1.0e-3),
        "target": "nemo.collections.asr.models.rnnt_bpe_models.EncDecRNNTBPEModel",
    }
    # fmt: on


def build_tiny_parakeet(tokenizer_dir: Path, d_model: int = 64) -> EncDecRNNTBPEModel:
    """A randomly initialised tiny TDT model of the real parakeet class (CPU, eval mode).

    ``tokenizer_dir`` must hold ``tokenizer.model`` and ``vocab.txt``; when it does not exist
    yet, a tokenizer is trained into it first.
    """
    from nemo.collections.asr.models import EncDecRNNTBPEModel
    from omegaconf import OmegaConf

    if not (tokenizer_dir / "tokenizer.model").exists():
        train_tiny_spm_tokenizer(tokenizer_dir)
    cfg = OmegaConf.create(tiny_parakeet_config(tokenizer_dir, d_model=d_model))
    model = EncDecRNNTBPEModel(cfg=cfg)
    return model.eval()


# --------------------------------------------------------------------------- canary-qwen (SALM)

QWEN_SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
QWEN_THINK = ["<think>", "</think>"]  # added, not special (as in Qwen3)
AUDIO_LOCATOR_TAG = "<|audioplaceholder|>"  # SALM adds it to the tokenizer itself
QWEN_CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}"
    "{%- if enable_thinking is defined and enable_thinking is false %}"
    "{{- '<think>\\n\\n</think>\\n\\n' }}{%- endif %}{%- endif %}"
)
LLM_HIDDEN = 64


def build_tiny_qwen_repo(llm_dir: Path, bpe_vocab: int = 400) -> Path:
    """Write a Qwen3-1.7B-shaped repo without weights: config.json (tiny Qwen3, tied embeddings),
    generation_config.json and a byte-level BPE tokenizer saved through ``Qwen2Tokenizer``
    (tokenizer.json, tokenizer_config.json with the chat template, vocab.json, merges.txt)."""
    from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import GenerationConfig, Qwen2Tokenizer, Qwen3Config
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

    llm_dir.mkdir(parents=True, exist_ok=True)
    bpe = Tokenizer(models.BPE())
    bpe.normalizer = normalizers.NFC()
    bpe.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    trainer = trainers.BpeTrainer(
        vocab_size=bpe_vocab,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(TOKENIZER_CORPUS * 8, trainer)
    bpe.model.save(str(llm_dir))  # vocab.json + merges.txt, as the real repo has them
    state = json.loads(bpe.to_str())["model"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in state["merges"]]
    vocab = dict(state["vocab"])
    for t in QWEN_SPECIAL:  # ids in Qwen's order, right after the BPE pieces
        vocab[t] = len(vocab)
    tok = Qwen2Tokenizer(
        vocab=vocab,
        merges=merges,
        unk_token=None,
        bos_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        model_max_length=40960,
    )
    tok.add_tokens(QWEN_SPECIAL, special_tokens=True)
    tok.add_tokens(QWEN_THINK)
    tok.save_pretrained(str(llm_dir))
    # The real repo keeps its chat template inside tokenizer_config.json (no .jinja file).
    tc_path = llm_dir / "tokenizer_config.json"
    tc = json.loads(tc_path.read_text(encoding="utf-8"))
    tc_path.write_text(json.dumps(tc | {"chat_template": QWEN_CHAT_TEMPLATE}, indent=2), "utf-8")

    vocab_size = (len(tok) + 1 + 63) // 64 * 64  # room for SALM's audio placeholder, padded
    cfg = Qwen3Config(
        vocab_size=vocab_size,
        hidden_size=LLM_HIDDEN,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        max_position_embeddings=4096,
        initializer_range=0.5,  # random weights that do not all predict the same token
        tie_word_embeddings=True,
        bos_token_id=tok.convert_tokens_to_ids("<|endoftext|>"),
        eos_token_id=tok.convert_tokens_to_ids("<|im_end|>"),
        pad_token_id=tok.convert_tokens_to_ids("<|endoftext|>"),
        dtype="bfloat16",
    )
    cfg.architectures = ["Qwen3ForCausalLM"]
    cfg.save_pretrained(str(llm_dir))
    GenerationConfig(
        bos_token_id=cfg.bos_token_id, eos_token_id=[cfg.eos_token_id], pad_token_id=cfg.pad_token_id
    ).save_pretrained(str(llm_dir))
    return llm_dir


def tiny_salm_config(pretrained_llm: str) -> dict[str, Any]:
    """canary-qwen-2.5b's config structure, shrunk. A plain dict, as SALM requires."""
    # fmt: off
    return {
        "pretrained_llm": pretrained_llm,
        "pretrained_asr": "nvidia/canary-1b-flash",  # only read when pretrained_weights is true
        "pretrained_weights": False,
        "prompt_format": "qwen",
        "audio_locator_tag": AUDIO_LOCATOR_TAG,
        "freeze_params": [r"^llm\..+$", r"^embed_tokens\..+$"],
        "prevent_freeze_params": [],  # must be a list: LoRA appends its own pattern
        "lora": dict(
            task_type="CAUSAL_LM", r=4, lora_alpha=8, lora_dropout=0.0,
            target_modules=["q_proj", "v_proj"],
        ),
        "perception": {
            "target": "nemo.collections.speechlm2.modules.perception.AudioPerceptionModule",
            "output_dim": LLM_HIDDEN,  # = the LLM's hidden size
            "preprocessor": tiny_parakeet_config(Path("."))["preprocessor"],
            "encoder": _conformer(128, 32, 1, 8),
            "modality_adapter": _conformer(32, 32, 1, 1),
            "spec_augment": None,
        },
        "optimizer": {"_target_": "torch.optim.AdamW", "lr": 1e-4, "betas": [0.9, 0.98]},
    }
    # fmt: on


def build_tiny_salm(workdir: Path) -> tuple[SALM, Path]:
    """A randomly initialised tiny SALM (eval mode) and the Qwen-like LLM folder it was built
    from (``workdir/qwen3``, named by ``cfg.pretrained_llm``)."""
    import torch
    from nemo.collections.speechlm2.models import SALM

    llm_dir = build_tiny_qwen_repo(workdir / "qwen3")
    torch.manual_seed(0)
    model = SALM(tiny_salm_config(str(llm_dir)))
    return model.eval(), llm_dir


def save_canary_repo(model: SALM, canary_dir: Path) -> Path:
    """``save_pretrained`` (config.json, model.safetensors, README.md), then name the LLM by its
    hub id in config.json, as the real repo does."""
    model.save_pretrained(str(canary_dir))
    cfg_path = canary_dir / "config.json"
    cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    cfg["pretrained_llm"] = QWEN_REPO_ID
    cfg_path.write_text(json.dumps(cfg, indent=2), encoding="utf-8")
    return canary_dir


def build_tiny_canary_repos(workdir: Path) -> tuple[Path, Path]:
    """Two folders holding what the hub serves for "nvidia/canary-qwen-2.5b" (config.json naming
    "Qwen/Qwen3-1.7B", model.safetensors, README.md) and for "Qwen/Qwen3-1.7B" (config.json,
    generation_config.json, tokenizer.json, tokenizer_config.json, vocab.json, merges.txt)."""
    model, llm_dir = build_tiny_salm(workdir)
    return save_canary_repo(model, workdir / "canary-qwen-2.5b"), llm_dir


# What SALM.from_pretrained reads of the LLM repo: the config and the tokenizer, no weights
# (vocab.json, merges.txt and generation_config.json are not read).
LLM_FILES = ("config.json", "tokenizer.json", "tokenizer_config.json")


def assemble_offline_salm_folder(canary_repo_dir: Path, llm_repo_dir: Path, out_dir: Path) -> Path:
    """Reference layout (NeMo 3.0) of one folder that ``SALM.from_pretrained(out_dir)`` loads
    without any hub access, canary's config.json unchanged::

        out_dir/config.json              canary's, as is ("pretrained_llm": "Qwen/Qwen3-1.7B")
        out_dir/model.safetensors        canary's
        out_dir/llm_backbone/config.json the LLM repo's config.json
        out_dir/llm_backbone/tokenizer*  the LLM repo's tokenizer files

    NeMo's ``_inject_local_artifact_paths`` rewrites ``pretrained_llm`` to ``llm_backbone/``
    in memory when ``llm_backbone/config.json`` exists; the tokenizer is then read from there
    too (a root ``tokenizer_config.json`` would take precedence for the tokenizer).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "model.safetensors"):
        shutil.copy2(canary_repo_dir / name, out_dir / name)
    backbone = out_dir / "llm_backbone"
    backbone.mkdir(exist_ok=True)
    for name in LLM_FILES:
        if (llm_repo_dir / name).exists():
            shutil.copy2(llm_repo_dir / name, backbone / name)
    return out_dir


def salm_key_mismatch(model: SALM, safetensors_file: Path) -> tuple[set[str], set[str]]:
    """(model keys absent from the file, file keys absent from the model). ``from_pretrained``
    loads with ``strict=False`` by default, so check this (or pass ``strict=True``). Tied
    weights are stored once: with Qwen3's tied embeddings ``lm_head.weight`` is never in the
    file, which is fine (``safetensors.torch.load_model`` re-ties it)."""
    from safetensors import safe_open

    with safe_open(str(safetensors_file), framework="pt") as f:
        keys = set(f.keys())
    ptrs: dict[int, list[str]] = {}
    for name, t in model.state_dict(keep_vars=True).items():
        if t.numel():
            ptrs.setdefault(t.data_ptr(), []).append(name)
    tied = {n for names in ptrs.values() if len(names) > 1 and set(names) & keys for n in names}
    return set(model.state_dict()) - keys - tied, keys - set(model.state_dict())


def transcribe_prompt(model: SALM, wav: Path) -> list[list[dict[str, Any]]]:
    tag = model.audio_locator_tag
    return [[{"role": "user", "content": f"Transcribe the following: {tag}", "audio": [str(wav)]}]]


def salm_offline_roundtrip(workdir: Path, wav: Path, max_new_tokens: int = 8) -> dict[str, Any]:
    """Build the tiny canary repos, assemble the offline folder, reload it with
    ``SALM.from_pretrained`` and compare with the in-memory model. Run it in a process started
    with HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 after ``offline.block_network()``."""
    import time

    import torch
    from nemo.collections.speechlm2.models import SALM

    t0 = time.perf_counter()
    original, llm_dir = build_tiny_salm(workdir)
    canary_dir = save_canary_repo(original, workdir / "canary-qwen-2.5b")
    folder = assemble_offline_salm_folder(canary_dir, llm_dir, workdir / "offline")
    t1 = time.perf_counter()
    reloaded = SALM.from_pretrained(str(folder), strict=True)
    t2 = time.perf_counter()
    missing, unexpected = salm_key_mismatch(reloaded, folder / "model.safetensors")
    sd_a, sd_b = original.state_dict(), reloaded.state_dict()
    same_sd = sd_a.keys() == sd_b.keys() and all(torch.equal(sd_a[k], sd_b[k]) for k in sd_a)
    with torch.inference_mode():
        ids = [
            m.generate(prompts=transcribe_prompt(m, wav), max_new_tokens=max_new_tokens)
            for m in (original, reloaded)
        ]
        chat = [[{"role": "user", "content": "Hello! Who are you?"}]]
        with reloaded.llm.disable_adapter():  # LLM mode: text only, no LoRA
            text_ids = reloaded.generate(prompts=chat, max_new_tokens=max_new_tokens)
    return {
        "build_s": round(t1 - t0, 2),
        "load_s": round(t2 - t1, 2),
        "pretrained_llm_after_load": str(reloaded.cfg.pretrained_llm),
        "files": sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()),
        "missing": sorted(missing),
        "unexpected": sorted(unexpected),
        "same_state_dict": same_sd,
        "ids_original": ids[0].tolist(),
        "ids_reloaded": ids[1].tolist(),
        "llm_mode_text": reloaded.tokenizer.ids_to_text(text_ids[0].tolist()),
    }


# --------------------------------------------------------------------------- sortformer


def tiny_sortformer_config(d_fc: int = 64, d_tf: int = 32) -> dict[str, Any]:
    """diar_streaming_sortformer_4spk-v2's config (same sections, targets, preprocessor and
    streaming settings), toy-sized."""
    stub = dict(manifest_filepath=None, sample_rate=16000, num_spks=4, session_len_sec=90)
    stub |= dict(soft_label_thres=0.5, soft_targets=False, labels=None, batch_size=1, shuffle=False)
    stub |= dict(num_workers=0, validation_mode=True, use_lhotse=False, pin_memory=False)
    # fmt: off
    return {
        "sample_rate": 16000, "pil_weight": 0.5, "ats_weight": 0.5, "max_num_of_spks": 4,
        "streaming_mode": True,
        "model_defaults": dict(fc_d_model=d_fc, tf_d_model=d_tf),
        "train_ds": dict(stub, shuffle=True, validation_mode=False),
        "validation_ds": dict(stub),
        "test_ds": dict(stub),
        "preprocessor": dict(
            _target_="nemo.collections.asr.modules.AudioToMelSpectrogramPreprocessor",
            normalize="NA", window_size=0.025, sample_rate=16000, window_stride=0.01, window="hann",
            features=128, n_fft=512, frame_splicing=1, dither=0.00001,
        ),
        "sortformer_modules": dict(
            _target_="nemo.collections.asr.modules.sortformer_modules.SortformerModules",
            num_spks=4, dropout_rate=0.5, fc_d_model=d_fc, tf_d_model=d_tf,
            spkcache_len=188, fifo_len=0, chunk_len=188, spkcache_update_period=188,
            chunk_left_context=1, chunk_right_context=1, spkcache_sil_frames_per_spk=3,
            scores_add_rnd=0, pred_score_threshold=0.25, max_index=99999, scores_boost_latest=0.05,
            sil_threshold=0.2, strong_boost_rate=0.75, weak_boost_rate=1.5, min_pos_scores_rate=0.5,
            causal_attn_rate=0.5, causal_attn_rc=7,
        ),
        "encoder": dict(
            _target_="nemo.collections.asr.modules.ConformerEncoder", feat_in=128, feat_out=-1,
            n_layers=2, d_model=d_fc, subsampling="dw_striding", subsampling_factor=8,
            subsampling_conv_channels=32, causal_downsampling=False, ff_expansion_factor=2,
            self_attention_model="rel_pos", n_heads=4, att_context_size=[-1, -1],
            att_context_style="regular", xscaling=True, untie_biases=True, pos_emb_max_len=5000,
            conv_kernel_size=9, conv_norm_type="batch_norm", conv_context_size=None, dropout=0.1,
            dropout_pre_encoder=0.1, dropout_emb=0.0, dropout_att=0.1,
            stochastic_depth_drop_prob=0.0, stochastic_depth_mode="linear",
            stochastic_depth_start_layer=1,
        ),
        "transformer_encoder": dict(
            _target_="nemo.collections.asr.modules.transformer.transformer_encoders.TransformerEncoder",
            num_layers=2, hidden_size=d_tf, inner_size=64, num_attention_heads=4,
            attn_score_dropout=0.5, attn_layer_dropout=0.5, ffn_dropout=0.5, hidden_act="relu",
            pre_ln=False, pre_ln_final_layer_norm=True,
        ),
        "loss": dict(_target_="nemo.collections.asr.losses.bce_loss.BCELoss", weight=None, reduction="mean"),
        "lr": 0.0001,
        "optim": dict(name="adamw", lr=0.0001, betas=[0.9, 0.98], weight_decay=1e-3),
        "target": "nemo.collections.asr.models.sortformer_diar_models.SortformerEncLabelModel",
    }
    # fmt: on
