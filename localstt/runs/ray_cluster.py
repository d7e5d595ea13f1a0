"""Ray for a job: join a cluster, or start a local instance that never leaves loopback.

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
import tempfile
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

OBJECT_STORE_BYTES = 200 * 1024 * 1024
LOCAL_ENV = {
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",  # a single machine: node IP stays 127.0.0.1
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_AUTH_MODE": "disabled",  # Ray 2.60: "disabled" or "token"; loopback only, no token needed
}
_BOOTSTRAP_CONFIG = "cluster_name: localstt\nprovider:\n  type: local\n  head_ip: 127.0.0.1\n"
_REPO_ROOT = str(Path(__file__).resolve().parents[2])


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
        import ray  # Ray: only a --ray job imports it
        from ray._private import ray_constants  # Ray: only a --ray job imports it

        ray_constants.RAY_ENABLE_UV_RUN_RUNTIME_ENV = False
        ray.init(address=address, runtime_env=runtime_env, log_to_driver=True)
        logger.info("joined the Ray cluster at %s: %s", address, cluster_resources())
        return
    os.environ.update(LOCAL_ENV)  # before ray is imported: it reads some of these at import
    import ray  # Ray: only a --ray job imports it
    from ray._private import ray_constants  # Ray: only a --ray job imports it

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
    import ray  # Ray: only a --ray job imports it

    ray.shutdown()
    if _local_temp_dir is not None:
        shutil.rmtree(_local_temp_dir, ignore_errors=True)
        _local_temp_dir = None


def cluster_resources() -> dict[str, float]:
    """What the Ray cluster this process joined has: {"CPU": 16.0, "GPU": 2.0, ...}."""
    import ray  # Ray: only a --ray job imports it

    return {str(name): float(amount) for name, amount in untyped(ray).cluster_resources().items()}


def untyped(module: Any) -> Any:
    """`module` for calls that Ray has not annotated (mypy --strict refuses untyped calls)."""
    return module


def node_name() -> str:
    try:
        import ray.util  # Ray: only a --ray job imports it

        ip = str(untyped(ray.util).get_node_ip_address())
    except Exception:
        ip = ""
    host = socket.gethostname()
    return f"{host} ({ip})" if ip and ip != host else host


def assigned_cpus() -> float | None:
    """The CPUs Ray gave the actor or task this runs in (its share of the node), or None outside Ray."""
    try:
        import ray  # Ray: only a --ray job imports it

        share = untyped(ray).get_runtime_context().get_assigned_resources().get("CPU")
    except Exception:
        return None
    return float(share) if share else None


def _cuda_devices() -> int:
    try:
        import torch  # with the model, not before

        return int(torch.cuda.device_count())
    except Exception:  # no torch, or a broken CUDA install: CPU actors
        return 0


def _python_path() -> str:
    """PYTHONPATH for Ray's workers: this checkout first, then what this process was given."""
    parts = [_REPO_ROOT, *[p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]]
    return os.pathsep.join(dict.fromkeys(parts))
