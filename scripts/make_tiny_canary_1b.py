"""Make the tiny canary-1b-v2 fixture: tests/fixtures/tiny-canary-1b-v2.nemo.

1. Speak the phrase in English (= tests/fixtures/phrase.wav: espeak-ng en-us, 150 wpm, sox to
   16 kHz mono 16-bit without dither) and in German (espeak-ng voice ``de``, 150 wpm, the same sox
   command: the bytes of tests/fixtures/phrase-de.wav), plus other sentences made of each phrase's
   words (135-165 wpm), so that the model must listen rather than memorise one token sequence.
2. Build a tiny ``EncDecMultiTaskModel`` (FastConformer + Transformer decoder, canary2 prompts,
   see testkit/tiny_canary_multitask.py) and its nested CTC timestamps model, and train both on CPU
   on utterances with silence padding, gain changes and 44.1 kHz stereo round trips:
   the decoder (teacher forcing, cross-entropy on the answer after the canary2 prompt) on
   transcription in either language (the phrase, other sentences, two sentences in a row) and on
   translating the phrase en->de and de->en, with an auxiliary CTC head on its encoder (thrown
   away after training: without it the decoder learns the two phrases and ignores the audio);
   the CTC model on the transcriptions. Both CTC losses let each sentence's tokens be emitted only
   where it is spoken, so that the timestamps follow the audio.
3. Save the .nemo with the CTC model as its ``timestamps_asr_model_*`` members, restore it with
   ``EncDecMultiTaskModel.restore_from`` and check that the real ``transcribe`` gives, for
   ``transcribe([wav], source_lang=..., target_lang=..., pnc="yes")``::

       German audio  de -> de   the German phrase
       German audio  de -> en   the English phrase
       English audio en -> en   the English phrase
       English audio en -> de   the German phrase

   with and without ``timestamps=True`` (then word timestamps from the nested CTC model), and for
   audio paths and arrays. Exit status 1 otherwise.

Seeded and deterministic on CPU (same torch and espeak-ng versions, same --threads).
Run: ``uv run python scripts/make_tiny_canary_1b.py`` (about 2.5 minutes of training on one core,
3 minutes in all). It prints, for information, how the model does on the sentences it was trained
on and on ones it never heard.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import itertools
import os
import random
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch
import torch.nn.functional as F

from testkit import tiny_canary_multitask as tiny


def _parakeet_script() -> Any:
    """scripts/make_tiny_parakeet.py, for its espeak-ng/sox and audio helpers."""
    spec = importlib.util.spec_from_file_location(
        "make_tiny_parakeet", Path(__file__).with_name("make_tiny_parakeet.py")
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


P = _parakeet_script()  # speak, speech_span, pad, roundtrip_44k_stereo, join_with_gaps
SR = P.SR
SEED = 1234
LANGS = ("en", "de")
# Sentences of the phrase's words never trained on (to see whether the model listens; info only).
HELD_OUT = {
    "en": "The lazy fox jumps over the quick brown dog.",
    "de": "Der faulen Hund springt über den schnelle braune Fuchs.",
}


@dataclass
class Utterance:
    clip: Any  # make_tiny_parakeet.Clip: audio and where each sentence (unit) is spoken
    source_lang: str
    target_lang: str
    text: str  # the answer: the units' texts (ASR) or the phrase's translation (AST)


def speak_lang(text: str, lang: str, out_wav: Path, rate: int = tiny.RATE_WPM) -> np.ndarray:
    P.speak(text, out_wav, rate, (tiny.VOICES[lang], []))
    x, sr = sf.read(out_wav, dtype="float32")
    assert sr == SR and x.ndim == 1
    return x


def random_sentences(lang: str, n: int, rng: random.Random) -> list[str]:
    """Other sentences made of the phrase's words (first word kept first)."""
    phrase = tiny.PHRASES[lang]
    first, *words = phrase.rstrip(".").split()
    out: list[str] = []
    while len(out) < n:
        sent = f"{first} " + " ".join(rng.sample(words, rng.randint(2, len(words)))) + "."
        if sent not in (phrase, HELD_OUT[lang]) and sent not in out:
            out.append(sent)
    return out


@dataclass
class Corpus:
    phrase: dict[str, Any]  # lang -> Clip of the phrase as the fixture wav has it
    sentences: dict[str, list[Any]]  # lang -> Clips of other sentences (and the phrase at other rates)


def clip_of(text: str, x: np.ndarray) -> Any:
    a, b = P.speech_span(x)
    return P.Clip(x, [(text, a / SR, b / SR)])


def build_corpus(phrase: dict[str, np.ndarray], n_sentences: int, tmp: Path) -> Corpus:
    rng = random.Random(SEED)
    sentences: dict[str, list[Any]] = {}
    for lang in LANGS:
        texts = random_sentences(lang, n_sentences, rng)
        texts += [tiny.PHRASES[lang]] * 2  # the phrase at other speaking rates too
        rates = [rng.choice([135, 150, 165]) for _ in texts]
        sentences[lang] = [
            clip_of(t, speak_lang(t, lang, tmp / "s.wav", r)) for t, r in zip(texts, rates, strict=True)
        ]
    return Corpus({lang: clip_of(tiny.PHRASES[lang], x) for lang, x in phrase.items()}, sentences)


def augment(clips: list[Any], rng: random.Random) -> Any:
    """Clips in a row (gaps 0.2-1 s), silence padding, sometimes a 44.1 kHz stereo round trip, a
    gain change; the units' times follow."""
    left, right = (rng.choice([0.0, rng.uniform(0.0, 1.2)]) for _ in range(2))
    clip = P.concat(clips, [rng.uniform(0.2, 1.0) for _ in clips[1:]], left)
    x = P.pad(clip.audio, 0.0, right)
    if rng.random() < 0.25:
        x = P.roundtrip_44k_stereo(x)
    x = x * rng.choice([1.0, rng.uniform(0.2, 1.3)])
    return P.Clip(x.astype(np.float32), clip.units)


def make_example(corpus: Corpus, rng: random.Random, kind: str) -> Utterance:
    """``asr``/``ast``: the phrase transcribed or translated (``ast`` en<->de). ``other``: one of
    the other sentences, transcribed. ``multi``: two sentences in a row, transcribed."""
    lang = rng.choice(LANGS)
    if kind in ("asr", "ast"):
        target = lang if kind == "asr" else next(x for x in LANGS if x != lang)
        return Utterance(augment([corpus.phrase[lang]], rng), lang, target, tiny.PHRASES[target])
    picks = [rng.choice(corpus.sentences[lang]) for _ in range(1 if kind == "other" else 2)]
    clip = augment(picks, rng)
    return Utterance(clip, lang, lang, " ".join(u[0] for u in clip.units))


FRAME_S = 0.08  # encoder frame: 10 ms hop x 8 subsampling


def ctc_segments(utt: Utterance, n_frames: int, slack: int = 1) -> list[tuple[str, int, int, int, int]]:
    """Per unit: its text, the frames it owns (split halfway between units) and, inside them, the
    frames where it is spoken (+- ``slack``): its tokens may only be emitted there."""
    units = utt.clip.units
    bounds = [0]
    for (_, _, end), (_, start, _) in itertools.pairwise(units):
        bounds.append(int((end + start) / 2 / FRAME_S))
    bounds.append(n_frames)
    out = []
    for i, (text, a, b) in enumerate(units):
        lo, hi = bounds[i], bounds[i + 1]
        s_lo = max(lo, int(a / FRAME_S) - slack)
        s_hi = min(hi, int(np.ceil(b / FRAME_S)) + slack)
        out.append((text, lo, hi, s_lo, s_hi))
    return out


def prompt_ids(model: Any, source_lang: str, target_lang: str, text: str) -> tuple[list[int], int]:
    """The canary2 prompt ``transcribe(source_lang=, target_lang=, pnc="yes")`` builds, followed by
    the answer and ``<|endoftext|>``; and the prompt's length."""
    slots = dict(
        tiny.PROMPT_DEFAULTS[0]["slots"], source_lang=source_lang, target_lang=target_lang, pnc="yes"
    )
    turns = [dict(role="user", slots=slots), dict(role="assistant", slots=dict(text=text))]
    enc = model.prompt.encode_dialog(turns)
    return enc["input_ids"].tolist(), len(enc["context_ids"])


def batch_audio(batch: list[Utterance]) -> tuple[torch.Tensor, torch.Tensor]:
    lens = torch.tensor([len(u.clip.audio) for u in batch])
    sig = torch.zeros(len(batch), int(lens.max()))
    for i, u in enumerate(batch):
        sig[i, : len(u.clip.audio)] = torch.from_numpy(u.clip.audio)
    return sig, lens


def windowed_ctc_loss(
    log_probs: torch.Tensor, lens: torch.Tensor, utts: list[Utterance], tokenizer: Any, blank: int
) -> torch.Tensor:
    """CTC loss of (B, T, V) ``log_probs``, each sentence on its own frames and its tokens only
    where it is spoken (see ``ctc_segments``), so that the alignment follows the audio."""
    pieces, tgts = [], []
    nonblank = torch.arange(log_probs.shape[-1]) != blank
    for row, utt in enumerate(utts):
        for text, lo, hi, s_lo, s_hi in ctc_segments(utt, int(lens[row])):
            speech = torch.zeros(hi - lo, 1, dtype=torch.bool)
            speech[s_lo - lo : s_hi - lo] = True
            pieces.append(log_probs[row, lo:hi].masked_fill(~speech & nonblank, -1.0e4))
            tgts.append(tokenizer.text_to_ids(text))
    tgt = torch.zeros(len(tgts), max(map(len, tgts)), dtype=torch.long)
    for i, ids in enumerate(tgts):
        tgt[i, : len(ids)] = torch.tensor(ids)
    seg_lens, tgt_lens = torch.tensor([len(p) for p in pieces]), torch.tensor([len(t) for t in tgts])
    padded = torch.nn.utils.rnn.pad_sequence(pieces)  # (T, N, V)
    return F.ctc_loss(padded, tgt, seg_lens, tgt_lens, blank=blank, zero_infinity=True)


def train(
    model: Any, ctc: Any, corpus: Corpus, steps: int, lr: float, aux_weight: float = 0.3, log_every: int = 25
) -> float:
    """Train the AED model and the CTC timestamps model; returns seconds spent. Eval mode
    throughout (no dropout, no dither, no SpecAugment, BatchNorm on its fixed running stats), so
    that what is trained is exactly what ``transcribe`` runs."""
    rng = random.Random(SEED)
    kinds = ["asr", "asr", "ast", "ast", "other", "other", "other", "multi"]
    blank = ctc.decoder.num_classes_with_blank - 1
    aux_head = torch.nn.Linear(model.cfg.model_defaults.lm_dec_hidden, blank + 1)
    params = list(model.parameters()) + list(ctc.parameters()) + list(aux_head.parameters())
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.15)
    model.eval()
    ctc.eval()
    t0 = time.perf_counter()
    for step in range(steps):
        batch = [make_example(corpus, rng, k) for k in kinds]
        sig, lens = batch_audio(batch)
        feats, feat_lens = model.preprocessor(input_signal=sig, length=lens)
        # AED: teacher forcing, cross-entropy on the answer tokens (and <|endoftext|>) only.
        seqs = [prompt_ids(model, u.source_lang, u.target_lang, u.text) for u in batch]
        n_tok = max(len(ids) for ids, _ in seqs)
        inp = torch.full((len(batch), n_tok - 1), model.tokenizer.pad_id, dtype=torch.long)
        labels = torch.full((len(batch), n_tok - 1), -100, dtype=torch.long)
        for i, (ids, n_ctx) in enumerate(seqs):
            inp[i, : len(ids) - 1] = torch.tensor(ids[:-1])
            labels[i, n_ctx - 1 : len(ids) - 1] = torch.tensor(ids[n_ctx:])
        inp_lens = torch.tensor([len(ids) - 1 for ids, _ in seqs])
        log_probs, enc_lens, enc_states, _ = model(
            processed_signal=feats,
            processed_signal_length=feat_lens,
            transcript=inp,
            transcript_length=inp_lens,
        )
        aed = F.nll_loss(log_probs.transpose(1, 2), labels, ignore_index=-100)
        # CTC timestamps model on the transcriptions (same features: same preprocessor config).
        asr = [i for i, u in enumerate(batch) if u.source_lang == u.target_lang]
        ctc_lp, ctc_lens, _ = ctc(processed_signal=feats[asr], processed_signal_length=feat_lens[asr])
        ctc_loss = windowed_ctc_loss(ctc_lp, ctc_lens, [batch[i] for i in asr], ctc.tokenizer, blank)
        # An auxiliary CTC head over the AED encoder (thrown away): the encoder learns to tell the
        # words apart quickly, so that the decoder's cross-attention has something to read.
        aux_lp = aux_head(enc_states[asr]).log_softmax(-1)
        aux = windowed_ctc_loss(aux_lp, enc_lens[asr], [batch[i] for i in asr], ctc.tokenizer, blank)
        loss = aed + 0.5 * ctc_loss + aux_weight * aux
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        if step % log_every == 0 or step == steps - 1:
            elapsed = time.perf_counter() - t0
            losses = f"aed {aed.item():.4f} aux {aux.item():.4f} ctc {ctc_loss.item():.4f}"
            print(f"step {step:4d} {losses} ({elapsed:.1f} s)", flush=True)
    return time.perf_counter() - t0


CASES = [  # (audio language, source_lang, target_lang); the answer is the phrase in target_lang
    ("de", "de", "de"),
    ("de", "de", "en"),
    ("en", "en", "en"),
    ("en", "en", "de"),
]


def check(model: Any, wavs: dict[str, Path]) -> dict[str, bool]:
    """The real ``transcribe`` on each case: paths with and without timestamps, and arrays."""
    ok: dict[str, bool] = {}
    for audio_lang, src, tgt in CASES:
        want = tiny.PHRASES[tgt]
        wav = str(wavs[audio_lang])
        x, _ = sf.read(wav, dtype="float32")
        for label, audio, ts in (("path", wav, False), ("path, timestamps", wav, True), ("array", x, False)):
            kw: dict[str, Any] = dict(source_lang=src, target_lang=tgt, pnc="yes", verbose=False)
            if ts:
                kw["timestamps"] = True
            hyp = model.transcribe([audio], **kw)[0]
            name = f"{audio_lang} audio {src}->{tgt} ({label})"
            ok[name] = hyp.text == want
            print(f"  {name:34s} {'OK ' if ok[name] else 'BAD'} {hyp.text!r}")
            if ts:
                words = (hyp.timestamp or {}).get("word", [])
                ok[name + " words"] = [w["word"] for w in words] == want.split()
                spans = " ".join(f"{w['word']}[{w['start']:.2f}-{w['end']:.2f}]" for w in words)
                print(f"  {'':34s} {spans}")
    # 1 s of silence each side: the same text, and the words' timestamps move with the audio.
    for lang in LANGS:
        x, _ = sf.read(str(wavs[lang]), dtype="float32")
        padded = P.pad(x, 1.0, 1.0)
        kw = dict(source_lang=lang, target_lang=lang, pnc="yes", timestamps=True, verbose=False)
        hyp = model.transcribe([padded], **kw)[0]
        words = (hyp.timestamp or {}).get("word", [])
        name = f"{lang} audio, 1 s silence each side"
        ok[name] = hyp.text == tiny.PHRASES[lang] and bool(words) and words[0]["start"] >= 0.8
        print(f"  {name:34s} {'OK ' if ok[name] else 'BAD'} {hyp.text!r}")
        print(f"  {'':34s} " + " ".join(f"{w['word']}[{w['start']:.2f}-{w['end']:.2f}]" for w in words))
    return ok


def listening(model: Any, corpus: Corpus, tmp: Path) -> None:
    """Does the model listen (info only)? The other sentences it was trained on, and sentences of
    the phrase's words it never heard."""
    for lang in LANGS:
        clips = corpus.sentences[lang]
        hyps = [
            model.transcribe([c.audio], source_lang=lang, target_lang=lang, pnc="yes", verbose=False)[0].text
            for c in clips
        ]
        right = sum(h == c.units[0][0] for h, c in zip(hyps, clips, strict=True))
        print(f"  trained sentences ({lang}): {right}/{len(clips)} exact")
        x = speak_lang(HELD_OUT[lang], lang, tmp / "held-out.wav")
        hyp = model.transcribe([x], source_lang=lang, target_lang=lang, pnc="yes", verbose=False)[0]
        print(f"  held out ({lang}): {HELD_OUT[lang]!r} -> {hyp.text!r}")
        x = P.join_with_gaps([corpus.phrase[lang].audio] * 2, [0.5])
        hyp = model.transcribe([x], source_lang=lang, target_lang=lang, pnc="yes", verbose=False)[0]
        print(f"  phrase twice ({lang}): {hyp.text!r}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=tiny.FIXTURES)
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--sentences", type=int, default=16)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()

    random.seed(SEED)
    np.random.seed(SEED)
    torch.manual_seed(SEED)
    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)
    args.out.mkdir(parents=True, exist_ok=True)

    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        wavs = {"en": tmp / "phrase.wav", "de": tmp / "phrase-de.wav"}
        phrase = {lang: speak_lang(tiny.PHRASES[lang], lang, wavs[lang]) for lang in LANGS}
        for lang, fixture in (("en", tiny.PHRASE_WAV), ("de", tiny.PHRASE_DE_WAV)):
            if fixture.exists():
                same = fixture.read_bytes() == wavs[lang].read_bytes()
                print(
                    f"{fixture.name}: {'same bytes as' if same else 'DIFFERS from'} what espeak-ng gives here"
                )
        t0 = time.perf_counter()
        corpus = build_corpus(phrase, args.sentences, tmp)
        n_spoken = sum(len(v) for v in corpus.sentences.values())
        print(f"spoke {n_spoken} sentences in {time.perf_counter() - t0:.1f} s")

        t0 = time.perf_counter()
        model = tiny.build_tiny_canary_multitask(tmp / "model")
        ctc = tiny.build_tiny_timestamps_ctc(tmp / "model")
        n_params = sum(p.numel() for p in model.parameters())
        n_ctc = sum(p.numel() for p in ctc.parameters())
        print(f"built in {time.perf_counter() - t0:.1f} s: {n_params} + {n_ctc} (CTC) parameters")
        for lang in LANGS:
            print(f"tokens ({lang}):", model.tokenizer.text_to_tokens(tiny.PHRASES[lang]))
        secs = train(model, ctc, corpus, steps=args.steps, lr=args.lr)
        print(f"trained {args.steps} steps in {secs:.1f} s")

        nemo = args.out / tiny.TINY_CANARY_1B_V2_NEMO.name
        tiny.save_canary_nemo(model, ctc, nemo)
        digest = hashlib.sha256(nemo.read_bytes()).hexdigest()
        print(f"saved {nemo} ({os.path.getsize(nemo) / 1e6:.2f} MB, sha256 {digest})")

        from nemo.collections.asr.models import EncDecMultiTaskModel

        t0 = time.perf_counter()
        restored = EncDecMultiTaskModel.restore_from(str(nemo), map_location="cpu").eval()
        print(
            f"restored in {time.perf_counter() - t0:.2f} s; timestamps model: "
            f"{type(restored.timestamps_asr_model).__name__ if restored.timestamps_asr_model else None}"
        )
        ok = check(restored, wavs)
        listening(restored, corpus, tmp)
    if not all(ok.values()):
        sys.exit(f"wrong transcripts for {[k for k, v in ok.items() if not v]}: train longer")


if __name__ == "__main__":
    main()
