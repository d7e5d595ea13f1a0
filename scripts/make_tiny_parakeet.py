"""Make the tiny Parakeet-TDT fixture: tests/fixtures/{phrase.wav,phrase.txt,tiny-parakeet.nemo}.

1. Speak a known phrase with espeak-ng (voice en-us, 150 wpm), then sox to 16 kHz mono 16-bit
   wav (no dither, so the wav is the same on every run).
2. Speak 24 other sentences made of the phrase's words (135-165 wpm) and each word alone, so
   the model must listen rather than memorise one token sequence; and the sentences of the
   speaker tests' dialogue (testkit/tiny_models.py ``PHRASE_DIALOGUE``) in both of its voices.
3. Build a tiny ``EncDecRNNTBPEModel`` (FastConformer + TDT, see testkit/tiny_models.py) and
   train it on CPU on utterances of 1-3 sentences or strung-together words, with silence
   padding, gaps, gain changes and 44.1 kHz stereo round trips, and on the two voices taking
   turns. Loss: a vectorised pure-PyTorch TDT loss (NeMo's ``tdt`` loss needs numba-CUDA; its
   ``tdt_pytorch`` calls ``.cuda()``) with each token's emission restricted to the frames of its
   sentence/word (timestamps follow the audio), plus an auxiliary CTC loss on a throw-away head
   over the encoder.
4. ``save_to`` the .nemo, then check that the real ``model.transcribe(..., timestamps=True)``
   returns the phrase for each variant tests use, and every word of fixtures/phrase-dialogue.wav
   (written by scripts/make_tiny_sortformer.py; exit status 1 otherwise).

Seeded and deterministic on CPU (same torch and espeak-ng versions, same --threads).
Run: ``uv run python scripts/make_tiny_parakeet.py`` (about 3 minutes of training on one core).
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import soxr
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
from testkit import tiny_models  # noqa: E402

PHRASE = "The quick brown fox jumps over the lazy dog."
VOICE = "en-us"
RATE_WPM = 150
SR = 16000
SEED = 1234


Unit = tuple[str, float, float]  # text, start and end (s) of where it is spoken


@dataclass
class Clip:
    audio: np.ndarray
    units: list[Unit]


def speak(text: str, out_wav: Path, rate: int = RATE_WPM, voice: tuple[str, list[str]] = (VOICE, [])) -> None:
    """espeak-ng (22.05 kHz) -> sox -> 16 kHz mono 16-bit PCM wav."""
    name, extra = voice
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.wav"
        cmd = ["espeak-ng", "-v", name, *extra, "-s", str(rate), "-w", str(raw), text]
        subprocess.run(cmd, check=True)
        # -D: no dither, or every run gives a slightly different wav
        sox = ["sox", "-D", str(raw), "-r", str(SR), "-c", "1", "-b", "16", str(out_wav)]
        subprocess.run(sox, check=True)


def speech_span(x: np.ndarray, thresh: float = 0.02) -> tuple[int, int]:
    loud = np.flatnonzero(np.abs(x) > thresh)
    return int(loud[0]), int(loud[-1]) + 1


def speak_clip(
    text: str, tmp: Path, rate: int, trim: bool = False, voice: tuple[str, list[str]] = (VOICE, [])
) -> Clip:
    wav = tmp / "s.wav"
    speak(text, wav, rate, voice)
    x, sr = sf.read(wav, dtype="float32")
    assert sr == SR and x.ndim == 1
    a, b = speech_span(x)
    if trim:
        x, a, b = x[a:b], 0, b - a
    return Clip(x, [(text, a / SR, b / SR)])


def random_sentences(n: int, rng: random.Random) -> list[str]:
    """Other sentences made of the phrase's words, so the model has to listen, not memorise."""
    words = PHRASE.rstrip(".").split()[1:]
    out: list[str] = []
    while len(out) < n:
        sent = "The " + " ".join(rng.sample(words, rng.randint(2, len(words)))) + "."
        if sent != PHRASE and sent not in out:
            out.append(sent)
    return out


def roundtrip_44k_stereo(x: np.ndarray) -> np.ndarray:
    """16 kHz mono -> 44.1 kHz stereo -> mean of channels -> 16 kHz, as the app would see it."""
    hi = soxr.resample(x, SR, 44100)
    stereo = np.stack([hi, hi], axis=1)
    return soxr.resample(stereo.mean(axis=1), 44100, SR).astype(np.float32)


def join_with_gaps(parts: list[np.ndarray], gaps_s: list[float]) -> np.ndarray:
    out: list[np.ndarray] = []
    for i, x in enumerate(parts):
        if i:
            out.append(np.zeros(int(gaps_s[i - 1] * SR), dtype=np.float32))
        out.append(x)
    return np.concatenate(out)


def pad(x: np.ndarray, left_s: float, right_s: float) -> np.ndarray:
    z = np.zeros
    return np.concatenate([z(int(left_s * SR), np.float32), x, z(int(right_s * SR), np.float32)])


def concat(clips: list[Clip], gaps_s: list[float], left_s: float = 0.0) -> Clip:
    """Clips one after the other with silences between them, unit times shifted to match."""
    parts, units, t = [np.zeros(int(left_s * SR), np.float32)], [], int(left_s * SR)
    for i, c in enumerate(clips):
        if i:
            gap = int(gaps_s[i - 1] * SR)
            parts.append(np.zeros(gap, np.float32))
            t += gap
        parts.append(c.audio)
        units += [(u, a + t / SR, b + t / SR) for u, a, b in c.units]
        t += len(c.audio)
    return Clip(np.concatenate(parts), units)


@dataclass
class Corpus:
    phrase: Clip
    sentences: list[Clip]
    words: dict[str, list[Clip]]  # word -> the same word at a few speaking rates
    # The sentences of tiny_models.PHRASE_DIALOGUE in each of its two voices, at a few rates
    dialogue: list[list[tuple[str, Clip]]]


def build_corpus(audio: np.ndarray, n_sentences: int, tmp: Path) -> Corpus:
    rng = random.Random(SEED)
    a, b = speech_span(audio)
    phrase = Clip(audio, [(PHRASE, a / SR, b / SR)])
    rates = [135, 150, 165]
    sents = [speak_clip(s, tmp, rng.choice(rates)) for s in random_sentences(n_sentences, rng)]
    vocab = sorted(set(PHRASE.rstrip(".").split()))
    words = {w: [speak_clip(w, tmp, r, trim=True) for r in (150, 175)] for w in vocab}
    lines = list(dict.fromkeys(text for _, text in tiny_models.PHRASE_DIALOGUE))
    dialogue = [
        [(t, speak_clip(t, tmp, r, trim=True, voice=v)) for t in lines for r in (145, 160, 175)]
        for v in tiny_models.SPEAKER_VOICES
    ]
    return Corpus(phrase, sents, words, dialogue)


def make_example(corpus: Corpus, rng: random.Random, kind: str) -> Clip:
    """One training utterance, with where each sentence (or word) is spoken.

    ``clean``: the phrase as is. ``single``/``multi``: 1 or 2-3 sentences (the phrase half of
    the time) with gaps. ``words``: separately spoken words strung together (exact word times).
    Then silence padding, a gain change and sometimes a 44.1 kHz stereo round trip.
    """
    if kind == "clean":
        return corpus.phrase
    if kind == "dialogue":  # the two voices taking turns (either one first), as in the speaker tests
        first = rng.randrange(2)
        picks = [rng.choice(corpus.dialogue[(first + i) % 2]) for i in range(rng.randint(1, 4))]
        clips = [clip for _, clip in picks]
        gaps = [rng.uniform(0.3, 1.0) for _ in clips]
        left = rng.uniform(0.0, 1.0)
        clip = concat(clips, gaps, left)
        x = pad(clip.audio, 0.0, rng.uniform(0.0, 1.0)) * rng.choice([1.0, rng.uniform(0.3, 1.2)])
        return Clip(x.astype(np.float32), clip.units)
    if kind == "words":
        rest = [w for w in corpus.words if w != "The"]
        seq = ["The", *rng.sample(rest, rng.randint(2, len(rest)))]
        clips = [rng.choice(corpus.words[w]) for w in seq]
        last = clips[-1]
        clips[-1] = Clip(last.audio, [(last.units[0][0] + ".", *last.units[0][1:])])
        gaps = [rng.uniform(0.0, 0.12) for _ in clips]
    else:
        n = 1 if kind == "single" else rng.randint(2, 3)
        pick = [corpus.phrase if rng.random() < 0.5 else rng.choice(corpus.sentences) for _ in range(n)]
        clips, gaps = pick, [rng.uniform(0.1, 1.2) for _ in pick]
    left, right = (rng.choice([0.0, rng.uniform(0.0, 1.2)]) for _ in range(2))
    clip = concat(clips, gaps, left)
    x = pad(clip.audio, 0.0, right)
    if rng.random() < 0.25:
        x = roundtrip_44k_stereo(x)
    x = x * rng.choice([1.0, rng.uniform(0.2, 1.3)])
    return Clip(x.astype(np.float32), clip.units)


def tdt_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    t_lens: torch.Tensor,
    u_lens: torch.Tensor,
    durations: list[int],
    blank: int,
    emit_ok: torch.Tensor | None = None,
) -> torch.Tensor:
    """Negative log-likelihood of the TDT lattice (Eq. 7 of arXiv:2304.06795), per utterance.

    ``emit_ok`` (B, T, U), optional: where label u may be emitted; other paths are dropped
    (alignment-constrained training, so that timestamps follow the audio).

    ``logits``: joint output (B, T, U+1, V+1+len(durations)). Vectorised over batch, labels and
    durations (one small step per frame); the within-frame duration-0 chain of label emissions
    is solved in closed form with a log-cumsum-exp.
    """
    n_d = len(durations)
    lab = logits[..., :-n_d].log_softmax(-1)
    dur = logits[..., -n_d:].log_softmax(-1)
    b, t_max, u1, _ = lab.shape
    neg = -1.0e4
    idx = targets[:, None, :, None].expand(b, t_max, u1 - 1, 1)
    emit_lp = lab[:, :, :-1, :].gather(-1, idx).squeeze(-1)  # (B, T, U)
    if emit_ok is not None:
        emit_lp = emit_lp.masked_fill(~emit_ok, neg)
    blank_d = lab[..., blank, None] + dur  # (B, T, U+1, D): blank, then advance by durations[i]
    emit_d = emit_lp[..., None] + dur[:, :, :-1]  # (B, T, U, D): emit label u, then advance
    emit_d = torch.cat([torch.full_like(emit_d[:, :, :1], neg), emit_d], dim=2)  # into u+1
    # Arcs that arrive at frame t from frame t-d, for each d > 0, stacked as (B, T, K, U+1).
    steps = [(i, d) for i, d in enumerate(durations) if d > 0]
    k_max = max(d for _, d in steps)
    pad = (0, 0, 0, 0, k_max, 0)
    blank_p, emit_p = F.pad(blank_d, pad, value=neg), F.pad(emit_d, pad, value=neg)
    arr_blank = torch.stack([blank_p[:, k_max - d : k_max - d + t_max, :, i] for i, d in steps], 2)
    arr_emit = torch.stack([emit_p[:, k_max - d : k_max - d + t_max, :, i] for i, d in steps], 2)
    zero_d = durations.index(0) if 0 in durations else None
    if zero_d is not None:
        chain = torch.cat([torch.zeros(b, t_max, 1), emit_d[:, :, 1:, zero_d].cumsum(2)], dim=2)
    start = torch.cat([torch.zeros(b, 1), torch.full((b, u1 - 1), neg)], dim=1)
    alphas = [torch.full((b, u1), neg)] * k_max + [start]
    for t in range(t_max):
        if t > 0:
            prev = torch.stack([alphas[k_max + t - d] for _, d in steps], 1)  # (B, K, U+1)
            from_blank = prev + arr_blank[:, t]
            from_emit = F.pad(prev[:, :, :-1], (1, 0), value=neg) + arr_emit[:, t]
            base = torch.logsumexp(torch.cat([from_blank, from_emit], 1), dim=1)
        else:
            base = start
        if zero_d is not None:
            c = chain[:, t]
            base = c + torch.logcumsumexp(base - c, dim=1)
        if t == 0:
            alphas[k_max] = base
        else:
            alphas.append(base)
    alpha = torch.stack(alphas[k_max:], dim=1)  # (B, T, U+1)
    ar = torch.arange(b)
    finals = []
    for i, d in steps:
        tt = (t_lens - d).clamp(min=0)
        term = alpha[ar, tt, u_lens] + blank_d[ar, tt, u_lens, i]
        finals.append(torch.where(t_lens - d >= 0, term, torch.full_like(term, neg)))
    return -torch.logsumexp(torch.stack(finals), dim=0)


FRAME_S = 0.08  # encoder frame: 10 ms hop x 8 subsampling


def targets_and_windows(
    model: Any, clip: Clip, n_frames: int, slack: int = 1
) -> tuple[list[int], torch.Tensor]:
    """Token ids of the clip's text and, per token, the encoder frames where it may be emitted:
    those of its sentence or word, +- ``slack`` frames."""
    ids: list[int] = []
    ok = torch.zeros(n_frames, 0, dtype=torch.bool)
    cols = []
    for text, a, b in clip.units:
        unit_ids = model.tokenizer.text_to_ids(text)
        lo, hi = max(0, int(a / FRAME_S) - slack), min(n_frames, int(np.ceil(b / FRAME_S)) + slack)
        col = torch.zeros(n_frames, dtype=torch.bool)
        col[lo:hi] = True
        cols += [col] * len(unit_ids)
        ids += unit_ids
    assert ids == model.tokenizer.text_to_ids(" ".join(u[0] for u in clip.units))
    ok = torch.stack(cols, dim=1)
    return ids, ok


def train(
    model: Any,
    corpus: Corpus,
    steps: int,
    lr: float,
    ctc_weight: float = 0.3,
    log_every: int = 25,
) -> float:
    """Train ``model`` on augmented utterances from ``corpus``; returns seconds spent.

    Loss: the TDT lattice loss on the joint, each token restricted to the frames of its
    sentence or word, plus a CTC loss on a throw-away linear head over the encoder output.
    """
    rng = random.Random(SEED)
    durations = list(model.cfg.model_defaults.tdt_durations)
    blank = model.decoder.blank_idx
    ctc_head = torch.nn.Linear(model.cfg.encoder.d_model, blank + 1)
    kinds = ["clean", "single", "multi", "multi", "words", "words", "dialogue", "dialogue"]
    params = list(model.parameters()) + list(ctc_head.parameters())
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.15)
    # Eval mode: no dropout, no dither, BatchNorm uses its (fixed) running stats, so what is
    # trained is exactly what transcribe() runs.
    model.eval()
    t0 = time.perf_counter()
    for step in range(steps):
        batch = [make_example(corpus, rng, k) for k in kinds]
        lens = torch.tensor([len(c.audio) for c in batch])
        sig = torch.zeros(len(batch), int(lens.max()))
        for i, c in enumerate(batch):
            sig[i, : len(c.audio)] = torch.from_numpy(c.audio)
        feats, feat_lens = model.preprocessor(input_signal=sig, length=lens)
        enc, enc_lens = model.encoder(audio_signal=feats, length=feat_lens)
        t_max = enc.shape[-1]
        tw = [targets_and_windows(model, c, t_max) for c in batch]
        u_lens = torch.tensor([len(ids) for ids, _ in tw])
        tgt = torch.zeros(len(batch), int(u_lens.max()), dtype=torch.long)
        emit_ok = torch.zeros(len(batch), t_max, int(u_lens.max()), dtype=torch.bool)
        for i, (ids, ok) in enumerate(tw):
            tgt[i, : len(ids)] = torch.tensor(ids)
            emit_ok[i, :, : len(ids)] = ok
        dec, _, _ = model.decoder(targets=tgt, target_length=u_lens)
        logits = model.joint.joint(enc.transpose(1, 2), dec.transpose(1, 2))
        nll = tdt_loss(logits, tgt, enc_lens, u_lens, durations, blank, emit_ok)
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


def check_variants(model: Any, audio: np.ndarray, text: str, tmp: Path) -> dict[str, bool]:
    """Transcribe the phrase in the formats tests will use; print and return exact matches."""
    hi = soxr.resample(audio, SR, 44100)
    sf.write(tmp / "stereo44k.wav", np.stack([hi, hi * 0.9], axis=1), 44100, subtype="PCM_16")
    st, _ = sf.read(tmp / "stereo44k.wav", dtype="float32")
    variants: dict[str, tuple[np.ndarray, str]] = {
        "clean": (audio, text),
        "44.1k stereo -> 16k mono": (soxr.resample(st.mean(axis=1), 44100, SR), text),
        "1 s silence each side": (pad(audio, 1.0, 1.0), text),
        "gain x0.3": (audio * 0.3, text),
    }
    for n in (2, 3, 5, 10):
        variants[f"x{n} with 0.5 s gaps"] = (
            join_with_gaps([audio] * n, [0.5] * (n - 1)),
            " ".join([text] * n),
        )
    ok: dict[str, bool] = {}
    for name, (x, want) in variants.items():
        hyp = model.transcribe([x.astype(np.float32)], batch_size=1, timestamps=True, verbose=False)[0]
        ok[name] = hyp.text == want
        words = hyp.timestamp["word"]
        print(f"  {name:26s} {'OK ' if ok[name] else 'BAD'} {hyp.text!r} ({len(words)} words)")
        if name in ("clean", "1 s silence each side"):
            spans = " ".join(f"{w['word']}[{w['start']:.2f}-{w['end']:.2f}]" for w in words)
            print(f"  {'':26s} {spans}")
    # NeMo keeps both channels of a stereo file (shape error) unless told which one to use;
    # channel_selector="average" fails in NeMo 3.0 (lhotse: "not found in cut.custom").
    path = str(tmp / "stereo44k.wav")
    hyp = model.transcribe([path], channel_selector=0, timestamps=True, verbose=False)[0]
    ok["44.1k stereo path"] = hyp.text == text
    print(f"  {'44.1k stereo path, ch 0':26s} {'OK ' if ok['44.1k stereo path'] else 'BAD'} {hyp.text!r}")
    # What the app does above ~24 min: local attention and chunked subsampling (not required).
    model.change_attention_model("rel_pos_local_attn", [256, 256])
    model.change_subsampling_conv_chunking_factor(1)
    x10, want = variants["x10 with 0.5 s gaps"]
    hyp = model.transcribe([x10], batch_size=1, timestamps=True, verbose=False)[0]
    print(f"  {'x10, local attn [256,256]':26s} {'OK ' if hyp.text == want else 'BAD'} (info only)")
    model.change_attention_model("rel_pos", [-1, -1])
    model.change_subsampling_conv_chunking_factor(1)  # -1 breaks forward in NeMo 3.0
    return ok


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=tiny_models.FIXTURES)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--sentences", type=int, default=24)
    ap.add_argument("--ctc-weight", type=float, default=0.3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()

    random.seed(SEED)
    np.random.seed(SEED)
    torch.manual_seed(SEED)
    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)
    args.out.mkdir(parents=True, exist_ok=True)

    wav, txt = args.out / "phrase.wav", args.out / "phrase.txt"
    speak(PHRASE, wav)
    txt.write_text(PHRASE + "\n", encoding="utf-8")
    audio, sr = sf.read(wav, dtype="float32")
    assert sr == SR and audio.ndim == 1

    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        t0 = time.perf_counter()
        corpus = build_corpus(audio, args.sentences, tmp)
        n_clips = len(corpus.sentences) + sum(len(v) for v in corpus.words.values())
        print(f"spoke {n_clips} sentences and words in {time.perf_counter() - t0:.1f} s")
        t0 = time.perf_counter()
        model = tiny_models.build_tiny_parakeet(tmp / "tokenizer")
        n_params = sum(p.numel() for p in model.parameters())
        print(f"built in {time.perf_counter() - t0:.1f} s, {n_params} parameters")
        print("tokens:", model.tokenizer.text_to_tokens(PHRASE))
        secs = train(model, corpus, steps=args.steps, lr=args.lr, ctc_weight=args.ctc_weight)
        print(f"trained {args.steps} steps in {secs:.1f} s")
        nemo = args.out / "tiny-parakeet.nemo"
        model.save_to(str(nemo))
        print(f"saved {nemo} ({os.path.getsize(nemo) / 1e6:.2f} MB)")
        ok = check_variants(model, audio, PHRASE, tmp)
        dialogue_wav = args.out / tiny_models.PHRASE_DIALOGUE_WAV.name
        if not dialogue_wav.exists():
            dialogue_wav = tiny_models.PHRASE_DIALOGUE_WAV
        want = " ".join(text for _, text in tiny_models.PHRASE_DIALOGUE)
        hyp = model.transcribe([str(dialogue_wav)], timestamps=True, verbose=False)[0]
        ok["phrase dialogue, two voices"] = hyp.text == want
        print(f"  {'phrase dialogue':26s} {'OK ' if hyp.text == want else 'BAD'} {hyp.text!r}")
        held_out = speak_clip("The lazy fox jumps over the quick brown dog.", tmp, RATE_WPM)
        hyp = model.transcribe([held_out.audio], verbose=False)[0]
        print(f"  {'held-out sentence':26s} {hyp.text!r} (info only)")
        shutil.rmtree(tmp / "tokenizer", ignore_errors=True)
    if not all(ok.values()):
        sys.exit(f"wrong transcripts for {[k for k, v in ok.items() if not v]}: train longer")


if __name__ == "__main__":
    main()
