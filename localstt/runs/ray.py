"""A job on Ray Data, across the GPUs of one machine or the nodes of a cluster.

    results = run_on_ray(paths, model_key, ["txt", "srt"], out_dir, config_path)          # local Ray
    results = run_on_ray(paths, model_key, ["txt"], out_dir, config_path, address="auto")  # a cluster

from_items(index, path) -> decode_audio as CPU tasks (one row each) -> TranscriberActor on a fixed
pool of actors (one per GPU by default; each loads ONE model replica, from its own node's
local_models/ through ModelStore, pinned and verified) -> the driver finishes each recording through
the job (localstt/runs/resume.py: its outputs into out_dir, then its line in job.jsonl), as rows arrive.

Errors travel as columns, never as exceptions: a recording that cannot be read or transcribed is
its own "error" row; a model that cannot be used on a node (not exported, does not load) is a
"fatal" row, and the driver raises that one sentence, naming the node, for the whole job. Ray itself
is started or joined by localstt/runs/ray_cluster.py.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from localstt import errors
from localstt.audio import DecodedAudio
from localstt.config import load_config
from localstt.errors import LocalSttError
from localstt.formats import WRITERS, transcript_from_json
from localstt.logfile import report_unexpected
from localstt.options import TranscribeOptions
from localstt.runs.batch import read_recording, transcribe_decoded
from localstt.runs.ray_cluster import assigned_cpus, cluster_resources, node_name, start_ray, stop_ray
from localstt.runs.result import RayPlacement, RecordingResult
from localstt.runs.resume import Job
from localstt.store import ModelStore

logger = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 16  # recordings per actor call (the family batches what fits inside it)
ACTOR_START_TIMEOUT_S = 1800  # for every actor of the pool to load its model


def run_on_ray(
    paths: Sequence[Path],
    model_key: str,
    formats: Sequence[str],
    out_dir: Path,
    config_path: str | os.PathLike[str],
    *,
    address: str | None = None,
    actors: int | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    options: TranscribeOptions | None = None,
    num_cpus: int | None = None,
    progress: Callable[[RecordingResult], None] | None = None,
) -> list[RecordingResult]:
    """Transcribe every one of `paths` on Ray into `out_dir` (see the module docstring); each one's
    outputs and job.jsonl line are written as its row arrives. `run_job_on_ray` with a job of them all."""
    config = load_config(config_path)
    job = Job(
        paths,
        model_key,
        config.model(model_key).revision,
        formats,
        out_dir,
        options or config.transcription,
        config.path,
        skip_done=False,
    )
    return run_job_on_ray(
        job, address=address, actors=actors, batch_size=batch_size, num_cpus=num_cpus, progress=progress
    )


def run_job_on_ray(
    job: Job,
    *,
    address: str | None = None,
    actors: int | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    num_cpus: int | None = None,
    progress: Callable[[RecordingResult], None] | None = None,
) -> list[RecordingResult]:
    """Transcribe `job.todo` on Ray; each recording is finished through `job` as its row arrives.
    Uses the Ray this process already joined, else joins `address` or starts a local instance (shut
    down before this returns).

    `actors`: how many model replicas (default: one per GPU of the cluster, or 1 without GPUs).
    `progress`: called with each result once its files and line are written.

    Returns:
        The results in the order of `job.todo`.

    Raises:
        LocalSttError: one that concerns the whole run (the model cannot be used on some node; the
            sentence names it).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, not {batch_size}")
    results: list[RecordingResult] = []
    if not job.todo:
        return results
    joined = sys.modules.get("ray")  # not imported before start_ray sets its environment
    started_here = joined is None or not joined.is_initialized()
    if started_here:
        start_ray(address, num_cpus=num_cpus)
    try:
        for row in _rows(job.todo, job.model_key, str(job.config_path), job.options, actors, batch_size):
            if row["fatal"]:
                raise _whole_run_error(row["fatal_type"], row["fatal"])
            transcript = transcript_from_json(row["transcript"]) if row["transcript"] else None
            placement = RayPlacement(
                node=str(row["node"]),
                actor_pid=int(row["pid"]),
                actor_loads=int(row["loads"]),
                load_s=float(row["load_s"]),
                actor_ready_at=float(row["ready_at"]),
                torch_threads=int(row["threads"]),
            )
            result = job.finish(int(row["index"]), transcript, str(row["error"]), placement)
            results.append(result)
            if progress is not None:
                progress(result)
    finally:
        if started_here:
            stop_ray()
    return sorted(results, key=lambda result: result.index)


def actor_plan(resources: Mapping[str, float], actors: int | None) -> tuple[int, float, float]:
    """(actors, GPUs per actor, CPUs per actor) for a cluster with `resources`.

    One actor per GPU by default (GPUs shared out when more are asked for); never a GPU request
    where there is none (Ray would wait forever); the actors leave one CPU to the decode tasks."""
    gpus = int(resources.get("GPU", 0))
    cpus = float(resources.get("CPU", 1))
    count = max(1, actors if actors is not None else gpus or 1)
    gpu_share = min(1.0, gpus / count) if gpus else 0.0
    return count, gpu_share, max(0.1, min(1.0, (cpus - 1) / count))


class TranscriberActor:
    """One model replica: loaded once, from this node's local_models/, when the actor starts."""

    loads = 0  # per process: how many times this actor's process loaded the model

    def __init__(self, model_key: str, config_path: str, options: TranscribeOptions) -> None:
        self.model_key = model_key
        self.options = options
        self.node = node_name()
        self.fatal = ""
        self.fatal_type = ""
        self.load_s = 0.0
        self.ready_at = 0.0
        self.threads = 0
        started = time.perf_counter()
        try:
            self.store = ModelStore(load_config(config_path), cpu_share=assigned_cpus())
            self.store.load(model_key)
        except LocalSttError as error:  # the whole run: the driver raises it
            self.fatal, self.fatal_type = f"on node {self.node}: {error}", type(error).__name__
            return
        except Exception as error:
            sentence = report_unexpected(error, f"loading {model_key} on {self.node}", config_path)
            self.fatal, self.fatal_type = f"on node {self.node}: {sentence}", "LoadError"
            return
        self.load_s = time.perf_counter() - started
        self.ready_at = time.time()
        self.threads = torch_threads()
        TranscriberActor.loads += 1
        logger.info("actor %d on %s loaded %s in %.1f s", os.getpid(), self.node, model_key, self.load_s)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list[Any]]:
        count = len(batch["index"])
        transcripts = [""] * count
        failures = [str(error) for error in batch["error"]]
        fatal = self.fatal
        if not fatal:
            good = [row for row in range(count) if not failures[row]]
            decoded = [(row, _audio_of(batch, row)) for row in good]
            paths = [Path(str(path)) for path in batch["path"]]
            try:
                for result in transcribe_decoded(
                    decoded, paths, self.model_key, self.options, self.store, None
                ):
                    if result.transcript is not None:
                        transcripts[result.index] = WRITERS["json"].render(result.transcript)
                    failures[result.index] = result.failure
            except LocalSttError as error:  # not per file: the model cannot be used
                fatal, self.fatal_type = f"on node {self.node}: {error}", type(error).__name__
        return {
            "index": [int(index) for index in batch["index"]],
            "transcript": transcripts,
            "error": failures,
            "fatal": [fatal] * count,
            "fatal_type": [self.fatal_type] * count,
            "node": [self.node] * count,
            "pid": [os.getpid()] * count,
            "loads": [TranscriberActor.loads] * count,
            "load_s": [round(self.load_s, 3)] * count,
            "ready_at": [self.ready_at] * count,
            "threads": [self.threads] * count,
        }


def decode_row(row: dict[str, Any], max_seconds: float, config_path: str) -> dict[str, Any]:
    """A Ray Data `map` step: one recording decoded to 16 kHz mono (its samples as float32 bytes), or
    the sentence saying why it cannot be read in "error"."""
    path = Path(str(row["path"]))
    out: dict[str, Any] = {
        "index": row["index"],
        "path": str(path),
        "samples": b"",
        "duration": 0.0,
        "source_sample_rate": 0,
        "source_channels": 0,
        "decoder": "",
        "error": "",
    }
    audio, out["error"] = read_recording(path, max_seconds, config_path)
    if audio is not None:
        out.update(
            samples=np.ascontiguousarray(audio.samples, dtype=np.float32).tobytes(),
            duration=audio.duration,
            source_sample_rate=audio.source_sample_rate,
            source_channels=audio.source_channels,
            decoder=audio.decoder,
        )
    return out


def _rows(
    paths: Sequence[Path],
    model_key: str,
    config_path: str,
    options: TranscribeOptions,
    actors: int | None,
    batch_size: int,
) -> Any:
    """The pipeline's output rows, streamed as they are done."""
    import ray  # Ray: only a --ray job imports it

    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    # Start the whole pool (each actor loads its model) before any batch goes out, so that every
    # replica gets work, and fail rather than wait forever for resources the cluster lacks.
    context.wait_for_min_actors_s = ACTOR_START_TIMEOUT_S
    resources = cluster_resources()
    count, gpu_share, cpu_share = actor_plan(resources, actors)
    logger.info(
        "Ray job: %d recordings, %d actors (%.2f GPU, %.2f CPU each), batches of %d",
        len(paths),
        count,
        gpu_share,
        cpu_share,
        batch_size,
    )
    items = [{"index": index, "path": str(path)} for index, path in enumerate(paths)]
    # A few blocks per CPU: enough decode tasks to spread, few enough that each is worth a task.
    blocks = min(len(items), max(1, int(resources.get("CPU", 1))) * 4)
    dataset: Any = ray.data.from_items(items, override_num_blocks=blocks)
    dataset = dataset.map(  # CPU tasks of their own: a ray_remote_args_fn keeps them out of the actors
        decode_row,
        fn_kwargs={"max_seconds": options.max_audio_minutes * 60, "config_path": config_path},
        ray_remote_args_fn=_decode_task_args,
    )
    dataset = dataset.map_batches(
        TranscriberActor,
        fn_constructor_kwargs={"model_key": model_key, "config_path": config_path, "options": options},
        compute=ray.data.ActorPoolStrategy(size=count),
        num_gpus=gpu_share,
        num_cpus=cpu_share,
        batch_size=batch_size,
        batch_format="numpy",
    )
    return dataset.iter_rows()


def torch_threads() -> int:
    import torch  # loaded with the model already

    return int(torch.get_num_threads())


def _decode_task_args() -> dict[str, Any]:
    return {"num_cpus": 1}


def _audio_of(batch: dict[str, np.ndarray], row: int) -> DecodedAudio:
    samples = np.frombuffer(batch["samples"][row], dtype=np.float32).copy()
    return DecodedAudio(
        samples=samples,
        duration=float(batch["duration"][row]),
        source_sample_rate=int(batch["source_sample_rate"][row]),
        source_channels=int(batch["source_channels"][row]),
        decoder=str(batch["decoder"][row]),
    )


def _whole_run_error(type_name: str, message: str) -> LocalSttError:
    kind = getattr(errors, str(type_name), None)
    if isinstance(kind, type) and issubclass(kind, LocalSttError):
        return kind(str(message))
    return errors.LoadError(str(message))
