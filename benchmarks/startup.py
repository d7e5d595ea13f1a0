"""Start-up benchmarks: how soon the app and the CLI give a first transcript (issue 15).

    uv run python benchmarks/startup.py [--rounds 1] [--workdir benchmarks/work/startup]

One run, every contender in a fresh process, on the tiny Parakeet of the tests (testkit/tiny_models.py)
exported from the test hub on 127.0.0.1, so NeMo's import dominates as it does for the real model on a
fast disk; nothing comes from the internet. Prints a JSON summary and writes WORKDIR/startup.json.

* first transcript: the app is started; once GET / answers, a user takes 3 s, then sends a 5 s clip
  through gradio_client. With [app] preload (the default), with `preload = []`, and the "NeMo demo
  pattern" (restore_from at import, then serve: see `serve-nemo-demo`).
* first page: start until GET / is 200, for the app and for a bare gr.Blocks app.
* CLI: `transcribe CLIP` start to exit, against a script that calls ASRModel.restore_from + transcribe.
* imports: python -X importtime of `import nemo.collections.asr`, by top-level package, and which of
  those packages run any code at all while the model loads and transcribes.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

USER_PAUSE_S = 3.0  # from the first page to the click
CONTENDERS = ("preload", "no_preload", "preload_at_start", "nemo_demo")
CLIP_SECONDS = 5.0


# --------------------------------------------------------------------------- the servers and scripts


def serve_nemo_demo(nemo: str, port: int) -> None:
    """NeMo's demo pattern: the model is restored at import, then a Gradio app serves it."""
    from localstt.compat import tarfile_with_extraction_filters

    tarfile_with_extraction_filters()
    import gradio as gr
    from nemo.collections.asr.models import ASRModel

    model = ASRModel.restore_from(nemo, map_location="cpu").eval()

    def transcribe(path: str) -> str:
        return str(model.transcribe([path], verbose=False)[0].text)

    demo = gr.Interface(transcribe, gr.Audio(type="filepath"), gr.Textbox(), api_name="transcribe")
    demo.launch(server_name="127.0.0.1", server_port=port)


def serve_app_eager(argv: list[str]) -> None:
    """The app with its warm-up started at once in main(), not once the page is served."""
    import transcribe_ui
    from localstt.web.app import TranscriptionApp

    start_preload = TranscriptionApp.start_preload

    def eager(self: TranscriptionApp, after_server: bool = True, server_wait_s: float = 120.0) -> Any:
        return start_preload(self, after_server=False)

    TranscriptionApp.start_preload = eager  # type: ignore[method-assign]
    sys.exit(transcribe_ui.main(argv))


def serve_bare(port: int) -> None:
    import gradio as gr

    with gr.Blocks() as demo:
        gr.Markdown("# bare")
    demo.launch(server_name="127.0.0.1", server_port=port)


def nemo_script(nemo: str, clip: str) -> None:
    from localstt.compat import tarfile_with_extraction_filters

    tarfile_with_extraction_filters()
    from nemo.collections.asr.models import ASRModel

    model = ASRModel.restore_from(nemo, map_location="cpu").eval()
    print(model.transcribe([clip], verbose=False)[0].text)


def inference_packages(nemo: str, clip: str, out: str) -> None:
    """The top-level packages whose Python code runs while the model loads and transcribes (after
    `import nemo.collections.asr`, which is not counted), with the number of functions called."""
    from localstt.compat import tarfile_with_extraction_filters

    tarfile_with_extraction_filters()
    from nemo.collections.asr.models import ASRModel

    loaded = set(sys.modules)
    called: collections.Counter[str] = collections.Counter()
    seen: set[Any] = set()

    def profile(frame: Any, event: str, arg: Any) -> None:
        if event == "call" and (code := frame.f_code) not in seen:
            seen.add(code)
            called[_package_of(frame.f_globals.get("__name__", "") or "")] += 1

    sys.setprofile(profile)
    try:
        model = ASRModel.restore_from(nemo, map_location="cpu").eval()
        text = model.transcribe([clip], verbose=False)[0].text
    finally:
        sys.setprofile(None)
    new = sorted({_package_of(name) for name in set(sys.modules) - loaded})
    Path(out).write_text(
        json.dumps({"called": called, "imported_later": new, "text": text}), encoding="utf-8"
    )


def _package_of(module: str) -> str:
    return module.split(".")[0]


# --------------------------------------------------------------------------- measuring


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def server(command: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[str]]:
    with log.open("w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, text=True)
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)


def wait_for_page(url: str, process: subprocess.Popen[str], log: Path, timeout: float = 600) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server stopped:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"no page after {timeout} s:\n{log.read_text()[-3000:]}")


def first_transcript(
    command: list[str], env: dict[str, str], work: Path, clip: Path, ours: bool
) -> dict[str, Any]:
    """Start the server; GET / until 200; 3 s later send the clip; the times from the start."""
    from gradio_client import Client, handle_file

    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    started = time.perf_counter()
    with server(
        [*command, "--port", str(port)] if ours else [*command, str(port)], env, work / "server.log"
    ) as p:
        wait_for_page(url, p, work / "server.log")
        page = time.perf_counter() - started
        time.sleep(USER_PAUSE_S)
        sent = time.perf_counter() - started
        client = Client(url, verbose=False)
        if ours:
            text = client.predict(
                [handle_file(str(clip))], None, "parakeet", ["txt"], api_name="/transcribe"
            )[0]
        else:
            text = client.predict(handle_file(str(clip)), api_name="/transcribe")
        done = time.perf_counter() - started
    return {"page_s": page, "sent_s": sent, "transcript_s": done, "waited_s": done - sent, "text": text}


def first_page(command: list[str], env: dict[str, str], work: Path, ours: bool) -> float:
    port = free_port()
    started = time.perf_counter()
    with server(
        [*command, "--port", str(port)] if ours else [*command, str(port)], env, work / "server.log"
    ) as p:
        wait_for_page(f"http://127.0.0.1:{port}/", p, work / "server.log")
        return time.perf_counter() - started


def timed_run(command: list[str], env: dict[str, str]) -> dict[str, Any]:
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{command} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return {"s": seconds, "stdout": done.stdout.strip()[-200:]}


def import_times(env: dict[str, str], module: str) -> dict[str, Any]:
    """python -X importtime -c 'import MODULE': wall time, and the self time of each top-level package."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    wall = time.perf_counter() - started
    by_package: collections.Counter[str] = collections.Counter()
    for line in done.stderr.splitlines():
        if match := re.match(r"import time:\s+(\d+) \|\s+\d+ \| *(\S+)", line):
            by_package[_package_of(match.group(2))] += int(match.group(1))
    top = {name: round(us / 1e6, 3) for name, us in by_package.most_common()}
    return {
        "wall_s": wall,
        "self_s_by_package": top,
        "total_self_s": round(sum(by_package.values()) / 1e6, 3),
    }


# --------------------------------------------------------------------------- the project


def build_project(work: Path) -> tuple[Any, Any, Path]:
    """Tiny Parakeet exported from the test hub; returns (hub context, project, 5 s clip)."""
    import numpy as np
    import soundfile as sf

    from testkit.hubserver import run_hub
    from testkit.store_env import NEMO_NAME, make_project
    from testkit.tiny_models import PARAKEET_REPO_ID, PHRASE_WAV, TINY_PARAKEET_NEMO

    hub_context = run_hub()
    hub = hub_context.__enter__()
    hub.add_commit(
        PARAKEET_REPO_ID, {"README.md": b"# model card\n", NEMO_NAME: TINY_PARAKEET_NEMO.read_bytes()}
    )
    shutil.rmtree(work / "project", ignore_errors=True)
    project = make_project(work / "project", hub)
    done = project.export("parakeet", timeout=600)
    if done.returncode != 0:
        raise RuntimeError(done.stderr)
    speech, rate = sf.read(PHRASE_WAV, dtype="float32")
    clip = work / "clip-5s.wav"
    sf.write(
        clip, np.concatenate([speech, np.zeros(int(CLIP_SECONDS * rate) - len(speech), np.float32)]), rate
    )
    return hub_context, project, clip


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    modes = {
        "serve-app-eager": 0,
        "serve-nemo-demo": 2,
        "serve-bare": 1,
        "nemo-script": 2,
        "inference-packages": 3,
    }
    if argv and argv[0] in modes:
        mode, rest = argv[0], argv[1:]
        if mode == "serve-app-eager":
            serve_app_eager(rest)
        elif mode == "serve-nemo-demo":
            serve_nemo_demo(rest[0], int(rest[1]))
        elif mode == "serve-bare":
            serve_bare(int(rest[0]))
        elif mode == "nemo-script":
            nemo_script(rest[0], rest[1])
        else:
            inference_packages(*rest)
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=1, help="rounds of every measurement (1)")
    parser.add_argument("--workdir", type=Path, default=HERE / "work" / "startup")
    args = parser.parse_args(argv)
    work: Path = args.workdir.resolve()
    work.mkdir(parents=True, exist_ok=True)
    from testkit.store_env import NEMO_NAME

    hub_context, project, clip = build_project(work)
    try:
        nemo = project.models_dir / "parakeet" / NEMO_NAME
        off = project.root / "no-preload.toml"
        off.write_text(re.sub(r"(?m)^preload = .*$", "preload = []", project.config.read_text()))
        env = project.env(GRADIO_TEMP_DIR=str(work / "gradio"), GRADIO_ANALYTICS_ENABLED="False")
        env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
        app = [sys.executable, str(REPO / "transcribe_ui.py")]
        me = [sys.executable, str(Path(__file__).resolve())]
        subprocess.run(
            [sys.executable, "-c", "import nemo.collections.asr, gradio"], env=env, check=True
        )  # warm caches
        results: dict[str, Any] = {"machine": machine(), "loadavg_start": os.getloadavg(), "rounds": []}
        for _ in range(args.rounds):
            out = work / "cli-out"
            shutil.rmtree(out, ignore_errors=True)
            one = {
                "preload": first_transcript([*app, "--config", str(project.config)], env, work, clip, True),
                "no_preload": first_transcript([*app, "--config", str(off)], env, work, clip, True),
                "preload_at_start": first_transcript(
                    [*me, "serve-app-eager", "--config", str(project.config)], env, work, clip, True
                ),
                "nemo_demo": first_transcript([*me, "serve-nemo-demo", str(nemo)], env, work, clip, False),
                "page_app": first_page([*app, "--config", str(project.config)], env, work, True),
                "page_bare": first_page([*me, "serve-bare"], env, work, False),
                "cli": timed_run(
                    [
                        sys.executable,
                        "-m",
                        "localstt.cli",
                        str(clip),
                        "--config",
                        str(project.config),
                        "--out",
                        str(out),
                        "--format",
                        "txt",
                    ],
                    env,
                ),  # fmt: skip
                "nemo_script": timed_run([*me, "nemo-script", str(nemo), str(clip)], env),
            }
            results["rounds"].append(one)
            print(json.dumps(one), flush=True)
        results["imports"] = {
            "nemo.collections.asr": import_times(env, "nemo.collections.asr"),
            "torch": import_times(env, "torch"),
            "gradio": import_times(env, "gradio"),
        }
        used = work / "inference-packages.json"
        subprocess.run([*me, "inference-packages", str(nemo), str(clip), str(used)], env=env, check=True)
        results["inference_packages"] = json.loads(used.read_text())
        results["loadavg_end"] = os.getloadavg()
    finally:
        hub_context.__exit__(None, None, None)
    saved = work / "startup.json"
    saved.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    results["summary"] = summary(results)
    saved.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(results["summary"], indent=1))
    return 0


def summary(results: dict[str, Any]) -> dict[str, Any]:
    from testkit.tiny_models import PHRASE_TXT

    rounds = results["rounds"]

    def median(path: tuple[str, ...]) -> float:
        values = []
        for one in rounds:
            value: Any = one
            for key in path:
                value = value[key]
            values.append(float(value))
        return round(statistics.median(values), 2)

    figures = {
        "first_transcript_s": {n: median((n, "transcript_s")) for n in CONTENDERS},
        "first_page_s": {
            "app_preload": median(("preload", "page_s")),
            "app_no_preload": median(("no_preload", "page_s")),
            "app_preload_at_start": median(("preload_at_start", "page_s")),
            "app_page_only": median(("page_app",)),
            "bare_blocks": median(("page_bare",)),
            "nemo_demo": median(("nemo_demo", "page_s")),
        },
        "after_click_s": {n: median((n, "waited_s")) for n in CONTENDERS},
        "cli_s": {"transcribe": median(("cli", "s")), "restore_from_script": median(("nemo_script", "s"))},
    }
    first = figures["first_transcript_s"]
    figures["ratios"] = {
        "preload_vs_no_preload": round(first["preload"] / first["no_preload"], 2),
        "preload_at_start_vs_no_preload": round(first["preload_at_start"] / first["no_preload"], 2),
        "preload_vs_nemo_demo": round(first["preload"] / first["nemo_demo"], 2),
        "page_app_vs_bare": round(
            figures["first_page_s"]["app_page_only"] / figures["first_page_s"]["bare_blocks"], 2
        ),
        "cli_vs_script": round(figures["cli_s"]["transcribe"] / figures["cli_s"]["restore_from_script"], 2),
    }
    figures["texts_ok"] = all(
        one[name]["text"].strip() == PHRASE_TXT.read_text().strip() for one in rounds for name in CONTENDERS
    )
    return figures


def machine() -> dict[str, Any]:
    from importlib import metadata

    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        "",
    )
    versions = {p: metadata.version(p) for p in ("torch", "nemo_toolkit", "gradio")}
    return {"cpu": cpu, "cores": os.cpu_count(), "gpu": "none", **versions}


if __name__ == "__main__":
    sys.exit(main())
