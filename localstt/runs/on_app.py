"""A job run by the app that is already running (its model warm), instead of in this process: the
command line's `transcribe` then starts in a second instead of loading torch, NeMo and the model.

    link, why = find_app(config, model_key, server=None, api_key=None)
    if link: run_job_on_app(job, link, seconds, progress)     # else: in-process, `why` said

The app must serve the same config.toml with the same pins (so the same model at the same commit
writes the transcript) and have the model; else, or when nothing answers, the job runs here. The
recordings go in batches (localstt/runs/batch.py's plan), one request each, to the app's endpoint
(localstt/web/openai_api/jobs.py); each transcript comes back whole as it is done and is finished
through the job here: its files and its job.jsonl line, exactly as in-process. The API key is
LOCALSTT_API_KEY's (never config.toml's).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from localstt import errors
from localstt.config import AppConfig
from localstt.errors import LocalSttError
from localstt.formats import transcript_from_json
from localstt.runs.batch import plan_batches, read_recording
from localstt.runs.result import RecordingResult
from localstt.runs.resume import Job

ASK_TIMEOUT_S = 2.0  # how long `find_app` waits for an answer before transcribing here


class AppGone(LocalSttError):
    """The app stopped answering in the middle of a job."""


@dataclass(frozen=True)
class AppLink:
    url: str  # e.g. http://127.0.0.1:7860
    api_key: str | None
    on_gpu: bool  # where the app runs the job's model: its batches are planned for it

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}


def app_url(config: AppConfig) -> str:
    """Where config.toml's [app] serves: its host (a wildcard one reached on 127.0.0.1) and port."""
    host = config.app.host
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{config.app.port}"


def find_app(
    config: AppConfig, model_key: str, *, server: str | None, api_key: str | None
) -> tuple[AppLink | None, str]:
    """(the app to run the job, "") or (None, why the job runs here).

    Raises:
        LocalSttError: `server` was named and cannot take the job (the sentence says why).
    """
    url = (server or app_url(config)).rstrip("/")
    link = AppLink(url, api_key, False)
    try:
        answer = httpx.get(
            f"{url}/v1/localstt/app", params={"model": model_key}, headers=link.headers, timeout=ASK_TIMEOUT_S
        )
    except httpx.HTTPError:
        return _refuse(server, f"no app answers at {url}")
    if answer.status_code == 401:
        return _refuse(server, f"the app at {url} wants its API key: set LOCALSTT_API_KEY to it")
    try:
        facts = answer.json() if answer.status_code == 200 else None
    except ValueError:
        facts = None
    if not isinstance(facts, dict) or "pins" not in facts:
        return _refuse(server, f"what answers at {url} is not this app")
    if Path(str(facts["config"])).resolve() != config.path.resolve():
        return _refuse(server, f"the app at {url} serves {facts['config']}, not {config.path}")
    pins = {key: spec.revision for key, spec in config.models.items()}
    if facts["pins"] != pins:
        return _refuse(server, f"the app at {url} runs other pins than {config.path} (restart it)")
    if model_key not in facts.get("transcribers", []):
        return _refuse(server, f"the app at {url} has no model {model_key}")
    return AppLink(url, api_key, bool(facts.get("on_gpu"))), ""


def _refuse(server: str | None, why: str) -> tuple[None, str]:
    if server is not None:  # the user named this app: not using it is an error, not a fallback
        raise LocalSttError(f"{why[0].upper()}{why[1:]}.")
    return None, why


def run_job_on_app(
    job: Job,
    link: AppLink,
    seconds: Sequence[float | None],
    progress: Callable[[RecordingResult], None],
) -> None:
    """`job.todo` through the app, batch by batch; each recording finished here as its transcript
    comes back.

    Raises:
        AppGone: the app stopped answering (what was done is in job.jsonl).
        LocalSttError: one that concerns the whole run, as the app said it.
    """
    batches = plan_batches(seconds, job.options.batch_minutes, on_gpu=link.on_gpu)
    done = 0
    for batch in batches:
        sent = []
        for index in batch:  # one this process cannot open gets the sentence it gets in-process
            if _readable(job.todo[index]):
                sent.append(index)
            else:
                failure = read_recording(
                    job.todo[index], job.options.max_audio_minutes * 60, job.config_path
                )[1]
                progress(job.finish(index, None, failure))
                done += 1
        for line in _batch_lines(job, link, sent) if sent else ():
            if "error" in line:
                kind = getattr(errors, str(line.get("type")), None)
                raise (kind if isinstance(kind, type) and issubclass(kind, LocalSttError) else LocalSttError)(
                    str(line["error"])
                )
            if "index" in line:
                index = sent[int(line["index"])]
                transcript = transcript_from_json(line["transcript"]) if line["transcript"] else None
                progress(job.finish(index, transcript, str(line["failure"])))
                done += 1
    if done < len(job.todo):
        raise AppGone(_gone(link, job))


def _readable(path: Path) -> bool:
    try:
        with path.open("rb"):
            return True
    except OSError:
        return False


def _batch_lines(job: Job, link: AppLink, batch: list[int]) -> Iterator[dict[str, Any]]:
    """The app's lines for one batch (the recordings `batch` indexes in `job.todo`)."""
    fields = {"job": json.dumps({"model": job.model_key, "options": job.options.to_wire()})}
    with contextlib.ExitStack() as stack:
        files = [
            ("file", (job.todo[index].name, stack.enter_context(job.todo[index].open("rb")), "audio/*"))
            for index in batch
        ]
        try:
            with httpx.stream(
                "POST",
                f"{link.url}/v1/localstt/batches",
                data=fields,
                files=files,
                headers=link.headers,
                timeout=httpx.Timeout(30.0, read=None),
            ) as answer:
                if answer.status_code != 200:
                    answer.read()
                    raise LocalSttError(_refusal(answer))
                saw_end = False
                for text in answer.iter_lines():
                    if text.strip():
                        line = json.loads(text)
                        saw_end = saw_end or bool(line.get("done"))
                        yield line
                if not saw_end:
                    raise AppGone(_gone(link, job))
        except httpx.HTTPError:
            raise AppGone(_gone(link, job)) from None


def _gone(link: AppLink, job: Job) -> str:
    return (
        f"The app at {link.url} stopped answering mid-job; what was done is in {job.log.path}: run the "
        "same command again to do the rest."
    )


def _refusal(answer: httpx.Response) -> str:
    try:
        return str(answer.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return f"The app answered {answer.status_code}."
