"""Many recordings in one run: decoded on CPU threads while the model runs, transcribed in batches.

    for result in transcribe_many(paths, model_key, options, store):   # as each batch is done
        result.index, result.transcript or result.failure

The recordings' lengths are read from their headers, and they are taken longest first, in batches
of at most `batch_minutes` of audio (config.toml's [transcription]). On a GPU a batch may hold
GPU_BATCH clips of up to SHORT_CLIP_S (64 minutes) whatever `batch_minutes` says: a GPU runs them in
one call, and the minutes, which bound what a stopped job redoes, matter on the slow CPU. While the
model runs one
batch, `decode_workers` threads decode the next. Inside a batch the model's family decides what
runs together (`transcribe_batch`: e.g. as many as fit in memory, long ones alone). One
recording that cannot be read, or that fails, costs only itself: a batch that fails is done again
one recording at a time, so that the failure lands on the recording that caused it.
`transcribe_all` gives the results in input order.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from localstt import engine
from localstt.audio import DecodedAudio, decode_audio, probe_seconds
from localstt.errors import LocalSttError
from localstt.logfile import report_unexpected
from localstt.models import Progress
from localstt.options import TranscribeOptions
from localstt.runs.result import RecordingResult
from localstt.runs.resume import Job
from localstt.store import ModelStore

logger = logging.getLogger(__name__)


GPU_BATCH = 128  # recordings a GPU batch may hold (the most a family's "auto" runs at once)
SHORT_CLIP_S = 30.0  # ... when they are this short; so a GPU batch holds at most 64 minutes of audio


def plan_batches(
    seconds: Sequence[float | None], batch_minutes: float, *, on_gpu: bool = False
) -> list[list[int]]:
    """Indexes of the recordings, longest first, cut into batches of at most `batch_minutes` of audio
    (a longer recording is a batch by itself); those of unknown length come last, one by one.
    `on_gpu`: at most GPU_BATCH recordings a batch, and room for that many short clips whatever
    `batch_minutes` says."""
    known = sorted((i for i, s in enumerate(seconds) if s is not None), key=lambda i: -(seconds[i] or 0.0))
    budget = max(batch_minutes * 60, GPU_BATCH * SHORT_CLIP_S) if on_gpu else batch_minutes * 60
    most = GPU_BATCH if on_gpu else len(seconds)
    batches: list[list[int]] = []
    total = 0.0
    for index in known:
        length = seconds[index] or 0.0
        if batches and total + length <= budget and len(batches[-1]) < most:
            batches[-1].append(index)
            total += length
        else:
            batches.append([index])
            total = length
    batches += [[i] for i, s in enumerate(seconds) if s is None]
    return batches


def runs_on_gpu(store: ModelStore, model_key: str) -> bool:
    """Whether `model_key` runs (or will run, once loaded) on a CUDA GPU."""
    if (loaded := store.loaded(model_key)) is not None:
        return loaded.device == "cuda"
    if store.config.runtime.device == "cpu":
        return False
    import torch  # the model that follows needs it anyway

    return bool(torch.cuda.is_available())


def read_recording(
    path: Path, max_seconds: float, config_path: Path | str
) -> tuple[DecodedAudio | None, str]:
    """(the recording decoded, "") or (None, the sentence saying why it cannot be read); an
    unexpected error's traceback goes to the log file. Ray's decode tasks use it too."""
    try:
        return decode_audio(path, max_seconds), ""
    except LocalSttError as error:  # AudioError: this recording only
        return None, str(error) or type(error).__name__
    except Exception as error:
        return None, report_unexpected(error, f"reading {path}", config_path)


def transcribe_many(
    paths: Sequence[Path],
    model_key: str,
    options: TranscribeOptions,
    store: ModelStore,
    *,
    seconds: Sequence[float | None] | None = None,
    decode_workers: int = 2,
    progress: Progress | None = None,
) -> Iterator[RecordingResult]:
    """Each recording's result, batch by batch as they are done (longest recordings first).

    `seconds`: the recordings' lengths, when the caller has probed them already (`probe_seconds`).

    Raises:
        LocalSttError: one that concerns the whole run (the model is not exported or does not load).
    """
    lengths = seconds if seconds is not None else [probe_seconds(path) for path in paths]
    batches = plan_batches(lengths, options.batch_minutes, on_gpu=runs_on_gpu(store, model_key))
    limit = options.max_audio_minutes * 60
    with ThreadPoolExecutor(max(1, decode_workers), thread_name_prefix="decode") as pool:

        def decode_batch(batch: list[int]) -> list[tuple[int, Future[tuple[DecodedAudio | None, str]]]]:
            return [
                (index, pool.submit(read_recording, paths[index], limit, store.config.path))
                for index in batch
            ]

        upcoming = decode_batch(batches[0]) if batches else []
        done = 0
        for number in range(len(batches)):
            current = upcoming
            upcoming = decode_batch(batches[number + 1]) if number + 1 < len(batches) else []
            decoded: list[tuple[int, DecodedAudio]] = []
            for index, future in current:
                audio, failure = future.result()
                if audio is None:
                    yield RecordingResult(index, paths[index], failure=failure)
                else:
                    decoded.append((index, audio))
            yield from transcribe_decoded(decoded, paths, model_key, options, store, progress)
            done += len(current)
            if progress is not None:
                progress(done / len(paths), f"{done} of {len(paths)} recordings")


def transcribe_all(
    paths: Sequence[Path],
    model_key: str,
    options: TranscribeOptions,
    store: ModelStore,
    *,
    decode_workers: int = 2,
) -> list[RecordingResult]:
    """`transcribe_many`'s results in the order of `paths`."""
    results = transcribe_many(paths, model_key, options, store, decode_workers=decode_workers)
    return sorted(results, key=lambda result: result.index)


def transcribe_decoded(
    decoded: list[tuple[int, DecodedAudio]],
    paths: Sequence[Path],
    model_key: str,
    options: TranscribeOptions,
    store: ModelStore,
    progress: Progress | None,
) -> Iterator[RecordingResult]:
    """One batch of decoded recordings (`decoded`: their indexes into `paths`, and samples): together
    in one model use, or, when that fails, one by one so that each failure is its recording's own.
    Ray's actors (localstt/runs/ray.py) run their batches through this too."""
    if not decoded:
        return
    recordings = [(audio, paths[index].name) for index, audio in decoded]
    if len(decoded) > 1:
        try:
            transcripts = engine.transcribe_together(recordings, model_key, options, store, progress)
        except LocalSttError as error:
            if not error.per_file:
                raise
        except Exception:
            logger.info("a batch of %d failed; doing its recordings one by one", len(decoded))
        else:
            for (index, _), transcript in zip(decoded, transcripts, strict=True):
                yield RecordingResult(index, paths[index], transcript)
            return
    for index, _ in decoded:  # one by one, decoded again (rare): the failure is that recording's own
        try:
            transcript = engine.transcribe(paths[index], model_key, options, store, progress)
        except LocalSttError as error:
            if not error.per_file:
                raise
            yield RecordingResult(index, paths[index], failure=str(error))
            continue
        except Exception as error:
            doing = f"transcribing {paths[index]} with {model_key}"
            yield RecordingResult(
                index, paths[index], failure=report_unexpected(error, doing, store.config.path)
            )
            continue
        yield RecordingResult(index, paths[index], transcript)


def run_job_here(
    job: Job,
    store: ModelStore,
    seconds: Sequence[float | None] | None = None,
    progress: Progress | None = None,
) -> Iterator[RecordingResult]:
    """`job.todo` in this process, in batches (`transcribe_many`); each recording is finished through
    the job (its outputs, then its line) as it ends, and its result yielded then."""
    results = transcribe_many(job.todo, job.model_key, job.options, store, seconds=seconds, progress=progress)
    for result in results:
        yield job.finish(result.index, result.transcript, result.failure)
