"""A batch job on Ray Data, across the GPUs of one machine or the nodes of a cluster.

    results = run_on_ray(paths, "parakeet", ["txt", "srt"], out_dir, config_path)          # local Ray
    results = run_on_ray(paths, "parakeet", ["txt"], out_dir, config_path, address="auto")  # a cluster

from_items(index, path) -> decode_audio as CPU tasks (one row each) -> TranscriberActor on a fixed
pool of actors (one per GPU by default; each loads ONE model replica, from its own node's
local_models/ through ModelStore, pinned and verified) -> the driver writes each file's outputs into
out_dir and appends its line to out_dir/job.jsonl, as rows arrive.

Errors travel as columns, never as exceptions: a recording that cannot be read or transcribed is
its own "error" row; a model that cannot be used on a node (not exported, does not load) is a
"fatal" row, and the driver raises that one sentence, naming the node, for the whole job.

A local instance (address None) never leaves loopback and asks no cloud metadata service: Ray is
told it is a single machine (RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0, node IP 127.0.0.1), usage stats and
token auth are off, no dashboard, and its processes get a private HOME whose ray_bootstrap_config.yaml
says the provider is local (else its usage-stats module probes 169.254.169.254).
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from localstt import errors
from localstt.audio import DecodedAudio
from localstt.errors import LocalSttError
from localstt.logfile import report_unexpected
from localstt.options import TranscribeOptions
from localstt.transcript import Transcript

logger = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 16  # recordings per actor call (the family batches what fits inside it)
ACTOR_START_TIMEOUT_S = 1800  # for every actor of the pool to load its model
OBJECT_STORE_BYTES = 200 * 1024 * 1024
LOCAL_ENV = {
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",  # a single machine: node IP stays 127.0.0.1
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_AUTH_MODE": "disabled",  # Ray 2.60: "disabled" or "token"; loopback only, no token needed
}
_BOOTSTRAP_CONFIG = "cluster_name: localstt\nprovider:\n  type: local\n  head_ip: 127.0.0.1\n"
_REPO_ROOT = str(Path(__file__).resolve().parent.parent)


@dataclass(frozen=True)
class RayResult:
    """One recording's outcome (like batch.BatchResult), with where and by which actor it ran."""

    index: int
    path: Path
    transcript: Transcript | None = None
    failure: str = ""  # one sentence; "" when it was done
    outputs: tuple[Path, ...] = ()  # the files written in out_dir
    node: str = ""  # "hostname (ip)" of the actor's node; "" when it never reached one
    actor_pid: int = 0
    actor_loads: int = 0  # how many times that actor loaded the model (1)
    load_s: float = 0.0  # how long that actor's load took
    actor_ready_at: float = 0.0  # time.time() when that actor had loaded its model


_local_temp_dir: Path | None = None  # the local instance this module started, while it runs


def start_ray(address: str | None, *, num_cpus: int | None = None) -> None:
    """Join `address` ("auto", "host:port" or "ray://host:port"), or with None start a local Ray
    instance on 127.0.0.1 only, with this machine's CPUs (or `num_cpus`) and CUDA GPUs.

    Call `stop_ray` when done (it shuts down what this started)."""
    global _local_temp_dir
    runtime_env = {"env_vars": {"PYTHONPATH": _python_path()}}  # workers import localstt
    # Workers run this Python, not `uv run` (Ray's uv hook would ship the checkout as a working_dir
    # and start workers in another environment, one without Ray). Ray reads it at import.
    os.environ["RAY_ENABLE_UV_RUN_RUNTIME_ENV"] = "0"
    if address is not None:
        import ray
        from ray._private import ray_constants

        ray_constants.RAY_ENABLE_UV_RUN_RUNTIME_ENV = False
        ray.init(address=address, runtime_env=runtime_env, log_to_driver=True)
        logger.info("joined the Ray cluster at %s: %s", address, cluster_resources())
        return
    os.environ.update(LOCAL_ENV)  # before ray is imported: it reads some of these at import
    import ray
    from ray._private import ray_constants

    ray_constants.ENABLE_RAY_CLUSTER = False  # also when ray was imported before the variables were set
    ray_constants.RAY_ENABLE_UV_RUN_RUNTIME_ENV = False
    temp_dir = Path(tempfile.mkdtemp(prefix="lsr", dir="/tmp" if os.name == "posix" else None))
    home = temp_dir / "home"  # unix socket paths under it must stay short (107 bytes)
    home.mkdir()
    (home / "ray_bootstrap_config.yaml").write_text(_BOOTSTRAP_CONFIG, encoding="utf-8")
    saved = {name: os.environ.get(name) for name in ("HOME", "PYTHONPATH")}
    os.environ["HOME"] = str(home)  # Ray's processes inherit it (the driver gets its own back)
    os.environ["PYTHONPATH"] = _python_path()
    try:
        ray.init(
            _node_ip_address="127.0.0.1",
            include_dashboard=False,
            num_cpus=num_cpus if num_cpus is not None else os.cpu_count() or 1,
            num_gpus=_cuda_devices(),
            object_store_memory=OBJECT_STORE_BYTES,
            _temp_dir=str(temp_dir),
            runtime_env=runtime_env,
            log_to_driver=True,
        )
    except BaseException:
        shutil.rmtree(temp_dir, ignore_errors=True)
        raise
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    _local_temp_dir = temp_dir
    logger.info("started a local Ray instance on 127.0.0.1: %s", cluster_resources())


def stop_ray() -> None:
    """Shut Ray down in this process; the local instance's processes and files go with it."""
    global _local_temp_dir
    import ray

    ray.shutdown()
    if _local_temp_dir is not None:
        shutil.rmtree(_local_temp_dir, ignore_errors=True)
        _local_temp_dir = None


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
    hashes: Mapping[Path, str] | None = None,
    num_cpus: int | None = None,
    progress: Callable[[RayResult], None] | None = None,
) -> list[RayResult]:
    """Transcribe `paths` on Ray (see the module docstring); each file's outputs and job.jsonl line are
    written as its row arrives. Uses the Ray this process already joined, else joins `address` or
    starts a local instance (shut down before this returns).

    `actors`: how many model replicas (default: one per GPU of the cluster, or 1 without GPUs).
    `hashes`: sha256 of inputs the caller already hashed (for JobLog.done); the others are hashed here.
    `progress`: called with each result once its files and line are written.

    Returns:
        The results in the order of `paths`.

    Raises:
        LocalSttError: one that concerns the whole run (the model cannot be used on some node; the
            sentence names it).
    """
    from localstt.config import load_config
    from localstt.hashing import sha256_file
    from localstt.joblog import JobLog, finish_recording, speakers_setting

    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, not {batch_size}")
    config = load_config(config_path)
    revision = config.model(model_key).revision
    options = options or config.transcription
    job = JobLog(out_dir)
    known = dict(hashes or {})
    results: list[RayResult] = []
    if not paths:
        return results
    joined = sys.modules.get("ray")  # not imported before start_ray sets its environment
    started_here = joined is None or not joined.is_initialized()
    if started_here:
        start_ray(address, num_cpus=num_cpus)
    try:
        for row in _rows(paths, model_key, str(config.path), options, actors, batch_size):
            if row["fatal"]:
                raise _whole_run_error(row["fatal_type"], row["fatal"])
            path = paths[int(row["index"])]
            transcript = transcript_of(row["transcript"]) if row["transcript"] else None
            failure = str(row["error"])
            if path not in known:
                try:
                    known[path] = sha256_file(path)
                except OSError:
                    known[path] = ""
            written, failure = finish_recording(
                job,
                path,
                known[path],
                model_key,
                revision,
                transcript,
                failure,
                formats,
                config.path,
                speakers_setting(options),
            )
            result = RayResult(
                index=int(row["index"]),
                path=path,
                transcript=None if failure else transcript,
                failure=failure,
                outputs=tuple(written),
                node=str(row["node"]),
                actor_pid=int(row["pid"]),
                actor_loads=int(row["loads"]),
                load_s=float(row["load_s"]),
                actor_ready_at=float(row["ready_at"]),
            )
            results.append(result)
            if progress is not None:
                progress(result)
    finally:
        if started_here:
            stop_ray()
    return sorted(results, key=lambda result: result.index)


def cluster_resources() -> dict[str, float]:
    """What the Ray cluster this process joined has: {"CPU": 16.0, "GPU": 2.0, ...}."""
    import ray

    return {str(name): float(amount) for name, amount in _untyped(ray).cluster_resources().items()}


def transcript_of(text: str) -> Transcript:
    """A Transcript sent between processes as JsonWriter's JSON."""
    from localstt.subtitles import transcript_from_json

    return transcript_from_json(text)


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
        from localstt.config import load_config
        from localstt.store import ModelStore

        self.model_key = model_key
        self.options = options
        self.node = _node_name()
        self.fatal = ""
        self.fatal_type = ""
        self.load_s = 0.0
        self.ready_at = 0.0
        started = time.perf_counter()
        try:
            self.store = ModelStore(load_config(config_path))
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
        TranscriberActor.loads += 1
        logger.info("actor %d on %s loaded %s in %.1f s", os.getpid(), self.node, model_key, self.load_s)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list[Any]]:
        from localstt.batch import transcribe_decoded
        from localstt.subtitles import WRITERS

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
    from localstt.batch import read_recording

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
    import ray

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


def _untyped(module: Any) -> Any:
    """`module` for calls that Ray has not annotated (mypy --strict refuses untyped calls)."""
    return module


def _node_name() -> str:
    try:
        import ray.util

        ip = str(_untyped(ray.util).get_node_ip_address())
    except Exception:
        ip = ""
    host = socket.gethostname()
    return f"{host} ({ip})" if ip and ip != host else host


def _cuda_devices() -> int:
    try:
        import torch

        return int(torch.cuda.device_count())
    except Exception:  # no torch, or a broken CUDA install: CPU actors
        return 0


def _python_path() -> str:
    """PYTHONPATH for Ray's workers: this checkout first, then what this process was given."""
    parts = [_REPO_ROOT, *[p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]]
    return os.pathsep.join(dict.fromkeys(parts))
