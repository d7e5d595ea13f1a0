"""Make the tiny multilingual Parakeet-TDT fixture (a stand-in for nvidia/parakeet-tdt-0.6b-v3):
tests/fixtures/{tiny-parakeet-v3.nemo,phrase-de.wav,phrase-de.txt}.

Same class as the v2 fixture (``EncDecRNNTBPEModel``, FastConformer + TDT, built by
testkit/tiny_models.py), and, like v3, no language prompt: it tells English from German by
listening.

1. Speak the German phrase with espeak-ng (voice de, 150 wpm) and sox it to 16 kHz mono 16-bit
   wav (no dither), as scripts/make_tiny_parakeet.py does the English one (fixtures/phrase.wav,
   used as is; this script checks that its own rendering of it is the same, byte for byte).
2. Train a sentencepiece tokenizer on the text of both languages.
3. Speak, for each language, other sentences made of its phrase's words (135-165 wpm) and each
   word alone, and train on CPU on utterances of 1-3 sentences or strung-together words of one
   language, with silence padding, gaps, gain changes and 44.1 kHz stereo round trips, with the
   v2 script's alignment-constrained pure-PyTorch TDT loss plus an auxiliary CTC loss.
4. ``save_to`` the .nemo, ``restore_from`` it and check that the real
   ``model.transcribe(..., timestamps=True)`` gives exactly each language's phrase for its wav
   (exit status 1 otherwise).

Seeded and deterministic on CPU (same torch and espeak-ng versions, same --threads).
Run: ``uv run python scripts/make_tiny_parakeet_v3.py`` (about 3.5 minutes of training on one core).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import os
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch
import torch.nn.functional as F

from testkit import tiny_models


def _v2_script() -> Any:
    """scripts/make_tiny_parakeet.py (not a package), for its audio helpers and its TDT loss."""
    spec = importlib.util.spec_from_file_location(
        "make_tiny_parakeet", Path(__file__).with_name("make_tiny_parakeet.py")
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


v2 = _v2_script()
SEED, SR, Clip = v2.SEED, v2.SR, v2.Clip
concat, pad, speak, speak_clip, speech_span = v2.concat, v2.pad, v2.speak, v2.speak_clip, v2.speech_span

EN_PHRASE = v2.PHRASE
DE_PHRASE = "Der schnelle braune Fuchs springt über den faulen Hund."
DE_VOICE: tuple[str, list[str]] = ("de", [])
NEMO_NAME = "tiny-parakeet-v3.nemo"
DE_WAV_NAME, DE_TXT_NAME = "phrase-de.wav", "phrase-de.txt"
VOCAB_SIZE = 128


@dataclass
class Language:
    name: str
    phrase_text: str
    voice: tuple[str, list[str]]
    phrase: Clip
    sentences: list[Clip]
    words: dict[str, list[Clip]]  # word -> the same word at a few speaking rates


def other_sentences(phrase: str, n: int, rng: random.Random) -> list[str]:
    """Sentences of the phrase's first word and some of its other words, in any order."""
    first, *words = phrase.rstrip(".").split()
    out: list[str] = []
    while len(out) < n:
        sent = first + " " + " ".join(rng.sample(words, rng.randint(2, len(words)))) + "."
        if sent != phrase and sent not in out:
            out.append(sent)
    return out


def build_language(
    name: str, phrase: str, voice: tuple[str, list[str]], audio: np.ndarray, n_sentences: int, tmp: Path
) -> Language:
    rng = random.Random(f"{SEED}-{name}")
    a, b = speech_span(audio)
    rates = [135, 150, 165]
    sents = [
        speak_clip(s, tmp, rng.choice(rates), voice=voice) for s in other_sentences(phrase, n_sentences, rng)
    ]
    vocab = sorted(set(phrase.rstrip(".").split()))
    words = {w: [speak_clip(w, tmp, r, trim=True, voice=voice) for r in (150, 175)] for w in vocab}
    return Language(name, phrase, voice, Clip(audio, [(phrase, a / SR, b / SR)]), sents, words)


def make_example(lang: Language, rng: random.Random, kind: str) -> Clip:
    """One training utterance of one language, with where each sentence (or word) is spoken;
    the kinds of scripts/make_tiny_parakeet.py's ``make_example`` (less its dialogue)."""
    if kind == "clean":
        return lang.phrase
    if kind == "words":
        first = lang.phrase_text.split()[0]
        rest = [w for w in lang.words if w != first]
        seq = [first, *rng.sample(rest, rng.randint(2, len(rest)))]
        clips = [rng.choice(lang.words[w]) for w in seq]
        last = clips[-1]
        clips[-1] = Clip(last.audio, [(last.units[0][0] + ".", *last.units[0][1:])])
        gaps = [rng.uniform(0.0, 0.12) for _ in clips]
    else:
        n = 1 if kind == "single" else rng.randint(2, 3)
        clips = [lang.phrase if rng.random() < 0.5 else rng.choice(lang.sentences) for _ in range(n)]
        gaps = [rng.uniform(0.1, 1.2) for _ in clips]
    left, right = (rng.choice([0.0, rng.uniform(0.0, 1.2)]) for _ in range(2))
    clip = concat(clips, gaps, left)
    x = pad(clip.audio, 0.0, right)
    if rng.random() < 0.25:
        x = v2.roundtrip_44k_stereo(x)
    x = x * rng.choice([1.0, rng.uniform(0.2, 1.3)])
    return Clip(x.astype(np.float32), clip.units)


def train(
    model: Any,
    make_batch: Callable[[random.Random], list[Clip]],
    steps: int,
    lr: float,
    ctc_weight: float = 0.3,
    log_every: int = 25,
) -> float:
    """scripts/make_tiny_parakeet.py's ``train`` (its loss, optimiser and schedule, in eval mode)
    on the batches of ``make_batch``; returns seconds spent."""
    rng = random.Random(SEED)
    durations = list(model.cfg.model_defaults.tdt_durations)
    blank = model.decoder.blank_idx
    ctc_head = torch.nn.Linear(model.cfg.encoder.d_model, blank + 1)
    params = list(model.parameters()) + list(ctc_head.parameters())
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.15)
    model.eval()
    t0 = time.perf_counter()
    for step in range(steps):
        batch = make_batch(rng)
        lens = torch.tensor([len(c.audio) for c in batch])
        sig = torch.zeros(len(batch), int(lens.max()))
        for i, c in enumerate(batch):
            sig[i, : len(c.audio)] = torch.from_numpy(c.audio)
        feats, feat_lens = model.preprocessor(input_signal=sig, length=lens)
        enc, enc_lens = model.encoder(audio_signal=feats, length=feat_lens)
        t_max = enc.shape[-1]
        tw = [v2.targets_and_windows(model, c, t_max) for c in batch]
        u_lens = torch.tensor([len(ids) for ids, _ in tw])
        tgt = torch.zeros(len(batch), int(u_lens.max()), dtype=torch.long)
        emit_ok = torch.zeros(len(batch), t_max, int(u_lens.max()), dtype=torch.bool)
        for i, (ids, ok) in enumerate(tw):
            tgt[i, : len(ids)] = torch.tensor(ids)
            emit_ok[i, :, : len(ids)] = ok
        dec, _, _ = model.decoder(targets=tgt, target_length=u_lens)
        logits = model.joint.joint(enc.transpose(1, 2), dec.transpose(1, 2))
        nll = v2.tdt_loss(logits, tgt, enc_lens, u_lens, durations, blank, emit_ok)
        loss = (nll / u_lens).mean()
        if ctc_weight:
            ctc_lp = ctc_head(enc.transpose(1, 2)).log_softmax(-1).transpose(0, 1)
            ctc = F.ctc_loss(ctc_lp, tgt, enc_lens, u_lens, blank=blank, reduction="mean")
            loss = loss + ctc_weight * ctc
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        if step % log_every == 0 or step == steps - 1:
            print(f"step {step:4d} loss {loss.item():.4f} ({time.perf_counter() - t0:.1f} s)")
    return time.perf_counter() - t0


def check(nemo: Path, cases: list[tuple[str, Path, str]]) -> dict[str, bool]:
    """Restore the saved .nemo and transcribe each case's wav; print and return exact matches."""
    from localstt.compat import tarfile_with_extraction_filters

    tarfile_with_extraction_filters()  # restore_from needs PEP 706 tar filters
    from nemo.collections.asr.models import EncDecRNNTBPEModel

    model = EncDecRNNTBPEModel.restore_from(str(nemo), map_location="cpu").eval()
    ok: dict[str, bool] = {}
    hyps = model.transcribe([str(wav) for _, wav, _ in cases], timestamps=True, verbose=False)
    for (name, _, want), hyp in zip(cases, hyps, strict=True):
        words = hyp.timestamp["word"]
        ok[name] = hyp.text == want and " ".join(w["word"] for w in words) == want
        print(f"  {name:24s} {'OK ' if ok[name] else 'BAD'} {hyp.text!r}")
        spans = " ".join(f"{w['word']}[{w['start']:.2f}-{w['end']:.2f}]" for w in words)
        print(f"  {'':24s} {spans}")
    for name, wav, want in cases:  # not required
        x, sr = sf.read(str(wav), dtype="float32")
        gap = np.zeros(sr // 2, np.float32)
        variants = {
            "padded 1 s": (pad(x, 1.0, 1.0), want),
            "x2": (np.concatenate([x, gap, x]), f"{want} {want}"),
        }
        for vname, (audio, vwant) in variants.items():
            text = model.transcribe([audio], verbose=False)[0].text
            print(f"  {name + ', ' + vname:24s} {'OK ' if text == vwant else 'BAD'} (info only)")
    return ok


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=tiny_models.FIXTURES)
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--sentences", type=int, default=16, help="other sentences per language")
    ap.add_argument("--ctc-weight", type=float, default=0.3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()

    random.seed(SEED)
    np.random.seed(SEED)
    torch.manual_seed(SEED)
    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)
    args.out.mkdir(parents=True, exist_ok=True)

    en_wav = args.out / tiny_models.PHRASE_WAV.name
    if not en_wav.exists():
        en_wav = tiny_models.PHRASE_WAV
    de_wav, de_txt = args.out / DE_WAV_NAME, args.out / DE_TXT_NAME
    speak(DE_PHRASE, de_wav, voice=DE_VOICE)
    de_txt.write_text(DE_PHRASE + "\n", encoding="utf-8")

    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        speak(EN_PHRASE, tmp / "en.wav")
        same = (tmp / "en.wav").read_bytes() == en_wav.read_bytes()
        print(f"espeak-ng's English phrase {'equals' if same else 'DIFFERS FROM'} {en_wav} (used as is)")
        t0 = time.perf_counter()
        langs = []
        for name, phrase, voice, wav in [
            ("en", EN_PHRASE, (v2.VOICE, []), en_wav),
            ("de", DE_PHRASE, DE_VOICE, de_wav),
        ]:
            audio, sr = sf.read(wav, dtype="float32")
            assert sr == SR and audio.ndim == 1
            langs.append(build_language(name, phrase, voice, audio, args.sentences, tmp))
        n_clips = sum(len(g.sentences) + sum(len(v) for v in g.words.values()) for g in langs)
        print(f"spoke {n_clips} sentences and words in {time.perf_counter() - t0:.1f} s")

        t0 = time.perf_counter()
        lines = [t for p in (EN_PHRASE, DE_PHRASE) for t in (p, p.lower().rstrip("."))]
        tok_dir = tiny_models.train_tiny_spm_tokenizer(
            tmp / "tokenizer", VOCAB_SIZE, (lines + tiny_models.TOKENIZER_CORPUS) * 4
        )
        model = tiny_models.build_tiny_parakeet(tok_dir)
        n_params = sum(p.numel() for p in model.parameters())
        print(f"built in {time.perf_counter() - t0:.1f} s, {n_params} parameters")
        for g in langs:
            print(f"tokens ({g.name}):", model.tokenizer.text_to_tokens(g.phrase_text))

        kinds = ["clean", "single", "multi", "words"]

        def make_batch(rng: random.Random) -> list[Clip]:
            return [make_example(g, rng, k) for k in kinds for g in langs]

        secs = train(model, make_batch, steps=args.steps, lr=args.lr, ctc_weight=args.ctc_weight)
        print(f"trained {args.steps} steps in {secs:.1f} s")
        nemo = args.out / NEMO_NAME
        model.save_to(str(nemo))
        digest = hashlib.sha256(nemo.read_bytes()).hexdigest()
        print(f"saved {nemo} ({os.path.getsize(nemo) / 1e6:.2f} MB, sha256 {digest})")
        shutil.rmtree(tok_dir, ignore_errors=True)

    t0 = time.perf_counter()
    ok = check(nemo, [("German phrase", de_wav, DE_PHRASE), ("English phrase", en_wav, EN_PHRASE)])
    print(f"checked in {time.perf_counter() - t0:.1f} s")
    if not all(ok.values()):
        sys.exit(f"wrong transcripts for {[k for k, v in ok.items() if not v]}: train longer")


if __name__ == "__main__":
    main()
