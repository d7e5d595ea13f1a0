"""Make the tiny Sortformer fixture: tests/fixtures/{tiny-sortformer.nemo,dialogue.wav,dialogue.json}.

1. Speak training sentences with two clearly different espeak-ng voices (en-us, and the female
   variant en-us+f3 at pitch 80), at a few speaking rates, then sox to 16 kHz mono 16-bit wav
   (no dither, so the audio is the same on every run). They include sentences of the tiny
   Parakeet's words (testkit/tiny_models.py), which the end-to-end speaker tests use.
2. Build a tiny ``SortformerEncLabelModel`` of the real class (FastConformer 2x64 + Transformer
   2x32, about 200 k parameters) with the streaming settings of NeMo's
   ``streaming_sortformer_diarizer_4spk-v2.yaml``.
3. Train it on CPU on random two-voice dialogues up to 16 s long (the voices taking turns,
   either one first; gaps, gain changes). ``training_step`` needs an optimizer attached by a
   trainer, so this calls ``model.forward`` (the streaming path that ``diarize`` runs) with
   NeMo's own ATS/PIL targets and ``BCELoss``. The loss sits on a plateau (speech found, voices
   not told apart) for a few hundred steps, then drops; dialogues shorter than the held-out one,
   or with one voice only, left it stuck. Some seeds stay stuck (1234 and 21 did, at 1200-1600
   steps); SEED 7 with 2400 steps (about 11 minutes on one core) passes both checks below.
4. Speak a held-out dialogue of sentences NOT used in training (dialogue.wav) and the dialogue
   of the end-to-end tests (phrase-dialogue.wav, sentences of the Parakeet's words), write each
   with its true turns, ``save_to`` the .nemo, restore it and check ``diarize`` on both (exit
   status 1 when a turn gets the wrong speaker for most of its duration or a boundary is off by
   > 0.5 s). Then run scripts/make_tiny_parakeet.py, which checks it transcribes phrase-dialogue.wav.

Seeded and deterministic on CPU (same torch and espeak-ng versions, same --threads).
Run: ``uv run python scripts/make_tiny_sortformer.py``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
from localstt.models.sortformer import parse_turns  # noqa: E402
from localstt.transcript import SpeakerTurn  # noqa: E402
from testkit import tiny_models  # noqa: E402

SR = 16000
SEED = 7
FRAME_S = 0.08  # Sortformer output frame: 10 ms hop x 8 subsampling
# (espeak-ng voice, extra arguments): a male and a high-pitched female voice
VOICES = tiny_models.SPEAKER_VOICES

TRAIN_SENTENCES = [
    "Good morning, how are you today?",
    "I think we should leave before it rains.",
    "The meeting starts at nine in the big room.",
    "Could you send me the report by Friday?",
    "My sister bought a new red bicycle.",
    "We walked along the river after lunch.",
    "Please turn off the lights when you go.",
    "The train was late again this morning.",
    "She plays the piano every evening.",
    "Do you know where I left my keys?",
    "That restaurant serves wonderful soup.",
    "The children are playing in the garden.",
    "I have never seen such a tall building.",
    "He forgot to water the plants last week.",
    "Let us meet at the station at noon.",
    "The weather will be sunny tomorrow.",
    "Can you help me carry these boxes?",
    "Our team won the game on Sunday.",
    "I would like a cup of tea, please.",
    "The library closes early on holidays.",
    "Yes, that sounds like a good plan.",
    "No, I do not agree with that at all.",
    "We need more paper for the printer.",
    "The cat is sleeping on the warm chair.",
    # the words of the tiny Parakeet (testkit/tiny_models.py), which the end-to-end tests use
    *dict.fromkeys(text for _, text in tiny_models.PHRASE_DIALOGUE),
    "The brown dog jumps over the lazy fox.",
    "The quick fox jumps over the dog.",
]

# The held-out dialogue: other sentences, never heard in training.
DIALOGUE = [
    (0, "Have you finished reading the book I lent you?"),
    (1, "Almost, I only have two chapters left."),
    (0, "What do you think of the ending so far?"),
    (1, "It is exciting, but a little sad."),
    (0, "I cried when I read it last summer."),
    (1, "Then I will keep some tissues ready."),
]
DIALOGUE_GAPS = [0.45, 0.6, 0.4, 0.7, 0.5]


@dataclass
class Utterance:
    audio: np.ndarray
    start: float  # where speech begins and ends inside ``audio`` (s)
    end: float


def speak(text: str, voice: int, rate: int, out_wav: Path) -> None:
    """espeak-ng (22.05 kHz) -> sox -> 16 kHz mono 16-bit PCM wav."""
    name, extra = VOICES[voice]
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.wav"
        cmd = ["espeak-ng", "-v", name, *extra, "-s", str(rate), "-w", str(raw), text]
        subprocess.run(cmd, check=True)
        # -D: no dither, or every run gives a slightly different wav
        subprocess.run(
            ["sox", "-D", str(raw), "-r", str(SR), "-c", "1", "-b", "16", str(out_wav)], check=True
        )


def speech_span(x: np.ndarray, thresh: float = 0.02) -> tuple[int, int]:
    loud = np.flatnonzero(np.abs(x) > thresh)
    return int(loud[0]), int(loud[-1]) + 1


def speak_trimmed(text: str, voice: int, rate: int, tmp: Path) -> Utterance:
    """The utterance cut to where it is loud, so its turn is exactly the audio."""
    wav = tmp / "s.wav"
    speak(text, voice, rate, wav)
    x, sr = sf.read(wav, dtype="float32")
    assert sr == SR and x.ndim == 1
    a, b = speech_span(x)
    return Utterance(x[a:b], 0.0, (b - a) / SR)


def build_corpus(tmp: Path) -> list[list[Utterance]]:
    """Per voice, every training sentence at three speaking rates."""
    rates = [145, 165, 185]
    return [[speak_trimmed(s, v, r, tmp) for s in TRAIN_SENTENCES for r in rates] for v in range(len(VOICES))]


def make_dialogue(
    corpus: list[list[Utterance]], rng: random.Random, max_s: float
) -> tuple[np.ndarray, list[SpeakerTurn]]:
    """A random dialogue: 2-8 turns (up to ``max_s`` s), the two voices taking turns (either one
    first), gaps of 0.1-1.0 s, silence around it, a gain change."""
    first = rng.randrange(2)
    voices = [(first + i) % 2 for i in range(rng.randint(2, 8))]
    t = rng.uniform(0.0, 1.0)
    parts = [np.zeros(int(t * SR), np.float32)]
    turns: list[SpeakerTurn] = []
    for i, v in enumerate(voices):
        utt = rng.choice(corpus[v])
        if turns and t + utt.end > max_s:
            break
        if i:
            gap = rng.uniform(0.1, 1.0)
            parts.append(np.zeros(int(gap * SR), np.float32))
            t += int(gap * SR) / SR
        turns.append(SpeakerTurn(t, t + utt.end, v))
        parts.append(utt.audio)
        t += len(utt.audio) / SR
    parts.append(np.zeros(int(rng.uniform(0.0, 1.0) * SR), np.float32))
    # No peak normalisation in streaming mode: the model must cope with loud and quiet audio.
    gain = rng.choice([1.0, rng.uniform(0.15, 1.2)])
    return np.concatenate(parts) * gain, turns


def frame_targets(turns: list[SpeakerTurn], n_frames: int, n_spk: int) -> torch.Tensor:
    """(frames, speakers): 1 where at least half of the 80 ms frame is in the speaker's turn."""
    y = torch.zeros(n_frames, n_spk)
    for turn in turns:
        lo, hi = round(turn.start / FRAME_S), round(turn.end / FRAME_S)
        y[lo : min(hi, n_frames), turn.speaker] = 1.0
    return y


def build_tiny_sortformer() -> Any:
    """A randomly initialised tiny model of the real Sortformer class (CPU, eval mode)."""
    from nemo.collections.asr.models import SortformerEncLabelModel
    from omegaconf import OmegaConf

    model = SortformerEncLabelModel(cfg=OmegaConf.create(tiny_models.tiny_sortformer_config()))
    return model.cpu().eval()


def frame_accuracy(model: Any, audio: np.ndarray, truth: list[dict[str, Any]]) -> float:
    """Share of the true speech frames where the right speaker (by arrival) is the most likely
    and above 0.5 (for the log only: ``diarize`` is checked at the end)."""
    with torch.no_grad(), contextlib.redirect_stderr(io.StringIO()):
        x = torch.from_numpy(audio)[None]
        preds = model.forward(audio_signal=x, audio_signal_length=torch.tensor([len(audio)]))[0]
    right = total = 0
    for turn in truth:
        frames = preds[round(turn["start"] / FRAME_S) : round(turn["end"] / FRAME_S)]
        ok = (frames.argmax(-1) == turn["speaker"]) & (frames.max(-1).values > 0.5)
        right, total = right + int(ok.sum()), total + len(frames)
    return right / total


def train(
    model: Any,
    corpus: list[list[Utterance]],
    steps: int,
    lr: float,
    batch: int,
    seed: int,
    max_s: float,
    probe: tuple[np.ndarray, list[dict[str, Any]]] | None = None,
) -> float:
    """Train on random dialogues through ``model.forward``; returns seconds spent. ``probe``: a
    held-out dialogue and its turns, to log how well it is told apart as training goes."""
    from nemo.collections.asr.parts.utils.asr_multispeaker_utils import get_ats_targets, get_pil_targets

    rng = random.Random(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.2)
    n_spk = model.sortformer_modules.n_spk
    # Eval mode: no dropout (0.5 in the transformer is far too much for this size), no dither,
    # fixed BatchNorm statistics, and forward() runs the same streaming path diarize() runs.
    model.eval()
    t0 = time.perf_counter()
    for step in range(steps):
        examples = [make_dialogue(corpus, rng, max_s=max_s) for _ in range(batch)]
        lens = torch.tensor([len(x) for x, _ in examples])
        sig = torch.zeros(batch, int(lens.max()))
        for i, (x, _) in enumerate(examples):
            sig[i, : len(x)] = torch.from_numpy(x)
        with contextlib.redirect_stderr(io.StringIO()):  # forward_streaming's progress bar
            preds = model.forward(audio_signal=sig, audio_signal_length=lens)
        n_frames = preds.shape[1]
        targets = torch.stack([frame_targets(turns, n_frames, n_spk) for _, turns in examples])
        # mel frames (10 ms, centred) -> 3 stride-2 convolutions, each rounding up
        target_lens = torch.clamp(-(-(lens // 160 + 1) // 8), max=n_frames)
        perms = model.speaker_permutations
        ats = model.loss(
            probs=preds, labels=get_ats_targets(targets.clone(), preds, perms), target_lens=target_lens
        )
        pil = model.loss(
            probs=preds, labels=get_pil_targets(targets.clone(), preds, perms), target_lens=target_lens
        )
        loss = model.ats_weight * ats + model.pil_weight * pil
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % 25 == 0 or step == steps - 1:
            msg = f"step {step:4d} loss {loss.item():.4f} ({time.perf_counter() - t0:.1f} s)"
            if probe is not None and (step % 100 == 0 or step == steps - 1):
                msg += f" held-out frames right {frame_accuracy(model, *probe):.1%}"
            print(msg, flush=True)
    return time.perf_counter() - t0


def write_dialogue(
    out: Path,
    tmp: Path,
    name: str = "dialogue",
    lines: list[tuple[int, str]] = DIALOGUE,
    gaps: list[float] = DIALOGUE_GAPS,
) -> tuple[Path, list[dict[str, Any]]]:
    """A dialogue as ``<name>.wav``, and its true turns as ``<name>.json`` (speaker 0 speaks first)."""
    parts, turns, t = [np.zeros(int(0.5 * SR), np.float32)], [], 0.5
    for i, (voice, text) in enumerate(lines):
        if i:
            gap = gaps[i - 1]
            parts.append(np.zeros(int(gap * SR), np.float32))
            t += int(gap * SR) / SR
        utt = speak_trimmed(text, voice, 160, tmp)
        turns.append({"start": round(t, 3), "end": round(t + utt.end, 3), "speaker": voice, "text": text})
        parts.append(utt.audio)
        t += len(utt.audio) / SR
    parts.append(np.zeros(int(0.5 * SR), np.float32))
    wav = out / f"{name}.wav"
    sf.write(wav, np.concatenate(parts), SR, subtype="PCM_16")
    (out / f"{name}.json").write_text(json.dumps(turns, indent=1) + "\n", encoding="utf-8")
    return wav, turns


def score(pred: list[SpeakerTurn], truth: list[dict[str, Any]]) -> tuple[float, float, bool]:
    """Share of true speech labelled with the right speaker, the worst boundary error (s), and
    whether every turn is right for most of its duration."""
    right_total, speech_total, worst, all_ok = 0.0, 0.0, 0.0, True
    for turn in truth:
        a, b, spk = turn["start"], turn["end"], turn["speaker"]
        mine = [p for p in pred if p.speaker == spk and p.end > a and p.start < b]
        right = sum(min(b, p.end) - max(a, p.start) for p in mine)
        right_total += right
        speech_total += b - a
        all_ok &= right > 0.5 * (b - a)
        worst = max(worst, abs(mine[0].start - a), abs(mine[-1].end - b)) if mine else float("inf")
    return right_total / speech_total, worst, all_ok and worst <= 0.5


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=FIXTURES)
    ap.add_argument("--steps", type=int, default=2400)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--max-s", type=float, default=16.0, help="longest training dialogue (s)")
    args = ap.parse_args()

    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)
    args.out.mkdir(parents=True, exist_ok=True)

    from nemo.collections.asr.models import SortformerEncLabelModel

    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        t0 = time.perf_counter()
        corpus = build_corpus(tmp)
        print(f"spoke {sum(len(c) for c in corpus)} utterances in {time.perf_counter() - t0:.1f} s")
        wav, truth = write_dialogue(args.out, tmp)
        phrase_wav, phrase_truth = write_dialogue(
            args.out, tmp, "phrase-dialogue", tiny_models.PHRASE_DIALOGUE, tiny_models.PHRASE_DIALOGUE_GAPS
        )
        model = build_tiny_sortformer()
        print(f"built, {sum(p.numel() for p in model.parameters())} parameters")
        probe = (sf.read(wav, dtype="float32")[0], truth)
        secs = train(model, corpus, args.steps, args.lr, args.batch, args.seed, args.max_s, probe)
        print(f"trained {args.steps} steps in {secs:.1f} s")
        nemo = args.out / "tiny-sortformer.nemo"
        model.save_to(str(nemo))
        print(f"saved {nemo} ({os.path.getsize(nemo) / 1e6:.2f} MB)")
    restored = SortformerEncLabelModel.restore_from(str(nemo), map_location="cpu")
    all_ok = True
    for what, path, true_turns in (
        ("held-out dialogue", wav, truth),
        ("phrase dialogue (end-to-end tests)", phrase_wav, phrase_truth),
    ):
        pred = parse_turns(restored.diarize(audio=[str(path)], batch_size=1, verbose=False)[0])
        for p in pred:
            print(f"  {p.start:6.2f} {p.end:6.2f} speaker {p.speaker}")
        accuracy, worst, ok = score(pred, true_turns)
        print(f"{what}: {accuracy:.1%} of the speech right, worst boundary error {worst:.2f} s")
        all_ok &= ok
    if not all_ok:
        sys.exit("a turn got the wrong speaker or a boundary is off by > 0.5 s: train longer or reseed")


if __name__ == "__main__":
    main()
