"""The web app under abuse, launched for real on 127.0.0.1, and what it leaves behind.

One server for the module, started with a config whose limits are tiny (uploads of 1 MB, recordings
of 10 minutes), a queue of 8, and transcript files kept 60 minutes: longer than the module runs, so
that the only sweep that deletes any is one a test sets up. It runs with a spy on the model
(testkit/overlap.py). After every abuse the server must still be running, its peak memory (VmHWM)
must have stayed within a bound, and a normal request must work.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import httpx
import numpy as np
import openai
import pytest
import soundfile as sf
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from gradio_client.utils import QueueError
from openai import OpenAI

from localstt.web import outputs as job_folders
from localstt.web.outputs import remove_uploads
from testkit.app import RunningApp, launch_app
from testkit.store_env import Project, config_on
from testkit.tiny_models import PHRASE_TXT, PHRASE_WAV

PHRASE = PHRASE_TXT.read_text().strip()
MEMORY_BOUND_KB = 250_000  # growth of the server's peak RSS over the whole module, after warm-up
KEEP_MINUTES = 60
FIGURES: dict[str, dict[str, int]] = {}
SLOW = pytest.mark.slow  # the server in its own process


@pytest.fixture(scope="module")
def abuse_app(exported_project: Project, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApp]:
    text = config_on(exported_project, "cpu").read_text()  # the memory bound is the CPU's
    text = re.sub(r"(?m)^max_upload_mb = .*$", "max_upload_mb = 1", text)
    text = re.sub(r"(?m)^max_audio_minutes = .*$", "max_audio_minutes = 10", text)
    text = re.sub(r"(?ms)^(\[library\].*?^enabled = )true$", r"\g<1>false", text)  # no copy kept: the promise
    config = exported_project.root / "abuse.toml"  # beside config.toml: same local_models/
    config.write_text(text)
    workdir = tmp_path_factory.mktemp("abuse")
    args = ("--max-queue", "8", "--keep-outputs-minutes", str(KEEP_MINUTES))
    with launch_app(exported_project, workdir, *args, config=config, spy_on_model=True) as app:
        assert transcribe(app, PHRASE_WAV)[0] == PHRASE  # warm-up: the model is loaded
        FIGURES["after warm-up"] = app.memory_kb()
        yield app
        FIGURES["at the end"] = app.memory_kb()
        print("server memory (kB):", json.dumps(FIGURES))


def transcribe(app: RunningApp, path: Path, formats: tuple[str, ...] = ("txt", "srt")) -> tuple:
    client = Client(app.url, verbose=False)
    return client.predict([handle_file(str(path))], None, "parakeet", list(formats), api_name="/transcribe")


def refused(app: RunningApp, path: Path) -> str:
    with pytest.raises(AppError) as caught:
        transcribe(app, path)
    message = str(caught.value)
    assert "Traceback" not in message
    return message


def assert_still_serving(app: RunningApp, label: str) -> None:
    """Alive, memory bounded, and a normal request still succeeds."""
    assert app.process.poll() is None, app.log.read_text()[-3000:]
    assert transcribe(app, PHRASE_WAV)[0] == PHRASE
    FIGURES[label] = memory = app.memory_kb()
    growth = memory["VmHWM"] - FIGURES["after warm-up"]["VmHWM"]
    assert growth < MEMORY_BOUND_KB, (label, memory, FIGURES["after warm-up"])


def with_defaults(app: RunningApp, data: list[Any]) -> list[Any]:
    """`data` for /transcribe's first inputs, and the defaults the page declares for the rest (as
    gradio_client fills them in)."""
    info = httpx.get(f"{app.url}gradio_api/info", timeout=30).json()
    parameters = info["named_endpoints"]["/transcribe"]["parameters"]
    return data + [parameter["parameter_default"] for parameter in parameters[len(data) :]]


def call_raw(app: RunningApp, data: list[Any]) -> tuple[str, Any]:
    """/transcribe through Gradio's plain HTTP API (no client-side checks): ("complete"|"error", data)."""
    data = with_defaults(app, data)
    joined = httpx.post(f"{app.url}gradio_api/call/transcribe", json={"data": data}, timeout=30)
    joined.raise_for_status()
    event = ""
    url = f"{app.url}gradio_api/call/transcribe/{joined.json()['event_id']}"
    with httpx.stream("GET", url, timeout=120) as stream:
        for line in stream.iter_lines():
            if line.startswith("event: "):
                event = line.removeprefix("event: ")
            elif line.startswith("data: ") and event in ("complete", "error"):
                return event, json.loads(line.removeprefix("data: "))
    raise AssertionError("the event stream ended without a result")


def file_data(path: str) -> dict[str, Any]:
    return {"path": path, "meta": {"_type": "gradio.FileData"}}


@SLOW
def test_upload_over_the_size_limit_is_refused_and_not_kept(abuse_app: RunningApp):
    """Defence: transcribe_ui.main passes [app] max_upload_mb to Gradio (max_file_size), which
    stops reading the body at the limit and answers 413; nothing of it stays on disk."""
    before = abuse_app.files()
    big = os.urandom(2 * 1024 * 1024)
    response = httpx.post(f"{abuse_app.url}gradio_api/upload", files={"files": ("big.wav", big)}, timeout=60)
    assert response.status_code == 413
    assert "maximum allowed size of 1048576 bytes" in response.text
    assert abuse_app.files() == before
    assert_still_serving(abuse_app, "after an upload over the limit")


@SLOW
def test_an_api_upload_over_the_limit_is_413_from_the_real_server(abuse_app: RunningApp, tmp_path: Path):
    """Defence: the server hands [app] max_upload_mb (1 here) to the API too (localstt.web.server,
    the API's UploadLimit), which stops reading the body past the limit and answers 413 with one
    sentence; the part it read is not kept, and the API goes on serving."""
    client = OpenAI(base_url=f"{abuse_app.url}v1", api_key="unused-on-loopback", max_retries=0, timeout=120)
    big = tmp_path / "long.wav"
    sf.write(big, np.zeros(16_000 * 40, dtype=np.float32), 16_000)  # 1.28 MB of 16-bit samples
    with big.open("rb") as audio, pytest.raises(openai.APIStatusError) as caught:
        client.audio.transcriptions.create(file=audio, model="parakeet")
    assert caught.value.status_code == 413
    assert isinstance(caught.value.body, dict), caught.value.body
    assert caught.value.body["message"] == (
        "The upload is larger than this server's limit of 1 MB (max_upload_mb in config.toml)."
    )
    assert list(abuse_app.tmp_dir.rglob("localstt-api-*")) == []
    with PHRASE_WAV.open("rb") as audio:
        assert client.audio.transcriptions.create(file=audio, model="parakeet").text == PHRASE
    assert_still_serving(abuse_app, "after an API upload over the limit")


@SLOW
def test_file_claiming_to_be_wav_with_a_broken_body_is_refused(abuse_app: RunningApp, tmp_path: Path):
    """Defence: localstt.audio.decode_audio names a damaged container instead of decoding garbage
    (a text file named .wav is already covered in test_app.py)."""
    fake = tmp_path / "recording.wav"
    fake.write_bytes(b"RIFF\xff\xff\x00\x00WAVEfmt " + os.urandom(50_000))
    assert "damaged or truncated WAV audio file" in refused(abuse_app, fake)
    assert_still_serving(abuse_app, "after a broken WAV")


@pytest.fixture(scope="module")
def bombs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """40 KB FLACs that decode to 3 hours: one that says so in its header, one that hides it."""
    folder = tmp_path_factory.mktemp("bombs")
    honest = folder / "three_hours.flac"
    with av.open(str(honest), "w") as out:  # FFmpeg's FLAC encoder, in-process through PyAV
        options = {"frame_size": "32768"}  # as large as FLAC allows: a 40 KB file
        stream = out.add_stream("flac", rate=8000, layout="mono", format="s16", options=options)
        silence = np.zeros((1, 600 * 8000), np.int16)  # 10 minutes
        for start in range(0, 3 * 3600 * 8000, silence.shape[1]):
            frame = av.AudioFrame.from_ndarray(silence, format="s16", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = 8000, start, Fraction(1, 8000)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    data = bytearray(honest.read_bytes())
    assert data[:4] == b"fLaC" and len(data) < 1_000_000
    # STREAMINFO: the low 36 bits of the 8 bytes at offset 18 are the total sample count; 0 = unknown.
    word = int.from_bytes(data[18:26], "big")
    assert word & (2**36 - 1) == 3 * 3600 * 8000
    data[18:26] = (word & ~(2**36 - 1)).to_bytes(8, "big")
    hidden = folder / "streamed.flac"
    hidden.write_bytes(bytes(data))
    return {"honest": honest, "hidden": hidden}


@SLOW
def test_decompression_bombs_are_refused_with_bounded_memory(abuse_app: RunningApp, bombs):
    """Defence: localstt.audio refuses a recording over max_audio_minutes from its header before
    decoding, and stops decoding one second past the limit when the header hides the length (a
    streamed FLAC goes to PyAV with the running limit); 3 h at 16 kHz would be 690 MB of samples."""
    assert "is 180.0 minutes long, over the limit of 10 minutes" in refused(abuse_app, bombs["honest"])
    message = refused(abuse_app, bombs["hidden"])
    assert "longer than the limit of 10 minutes (decoding stopped after 10." in message
    assert_still_serving(abuse_app, "after two decompression bombs")


@SLOW
def test_empty_uploads_are_refused(abuse_app: RunningApp, tmp_path: Path):
    """Defence: localstt.audio refuses a 0-byte file and a valid WAV with no samples, each in one
    sentence, instead of handing them to the model."""
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    assert "is empty (0 bytes)" in refused(abuse_app, empty)
    no_samples = tmp_path / "no_samples.wav"
    sf.write(no_samples, np.zeros(0, np.float32), 16000)
    assert "contains no audio samples" in refused(abuse_app, no_samples)
    assert_still_serving(abuse_app, "after empty uploads")


@SLOW
@pytest.mark.parametrize("name", ["../../etc/evil.wav", "..\\..\\evil.wav", "/tmp/evil.wav"])
def test_path_traversal_filename_stays_in_the_upload_folder(abuse_app: RunningApp, name: str):
    """Defence: Gradio keeps only the last part of an upload's file name, inside its upload folder;
    and a request naming a file outside that folder is refused, the file left alone (also by
    localstt.web.outputs.remove_uploads, which deletes only inside the upload folder)."""
    response = httpx.post(
        f"{abuse_app.url}gradio_api/upload", files={"files": (name, PHRASE_WAV.read_bytes())}, timeout=30
    )
    assert response.status_code == 200, response.text
    (stored,) = response.json()
    # One level below the upload folder (its per-upload folder), the name reduced to one component.
    assert Path(stored).parent.parent == abuse_app.upload_dir
    assert Path(stored).name.endswith("evil.wav") and "\\" not in Path(stored).name
    for outside in (Path("/etc/evil.wav"), Path("/tmp/evil.wav"), abuse_app.upload_dir.parent / "evil.wav"):
        assert not outside.exists()
    event, data = call_raw(abuse_app, [[file_data(stored)], None, "parakeet", ["txt"], False, ""])
    assert event == "complete" and data[0] == PHRASE
    assert not Path(stored).exists()  # deleted when the job ended
    event, data = call_raw(
        abuse_app, [[file_data(stored)], None, "parakeet", ["txt"], False, ""]
    )  # same path again
    assert event == "error" and "this upload is no longer on the server" in json.dumps(data), data

    victim = abuse_app.upload_dir.parent / "victim.wav"
    shutil.copy(PHRASE_WAV, victim)
    event, _ = call_raw(abuse_app, [[file_data(str(victim))], None, "parakeet", ["txt"], False, ""])
    assert event == "error"
    assert victim.read_bytes() == PHRASE_WAV.read_bytes()
    assert_still_serving(abuse_app, f"after the upload name {name!r}")


def test_uploads_are_deleted_only_inside_the_upload_folder(tmp_path: Path):
    """Defence: localstt.web.outputs.remove_uploads; the paths come from the client, so a path outside
    Gradio's upload folder (or a link out of it, or the app's own output folder) is never deleted."""
    root, outside = tmp_path / "gradio", tmp_path / "elsewhere"
    (root / "abc123").mkdir(parents=True)
    (root / "out" / "job-1").mkdir(parents=True)
    outside.mkdir()
    upload, victim, output = (
        root / "abc123" / "a.wav",
        outside / "victim.wav",
        root / "out" / "job-1" / "a.srt",
    )
    for path in (upload, victim, output):
        path.write_bytes(b"data")
    (root / "link").mkdir()
    (root / "link" / "to-victim.wav").symlink_to(victim)
    escape = root / "abc123" / ".." / ".." / "elsewhere" / "victim.wav"
    remove_uploads(
        [str(victim), str(escape), str(root / "link" / "to-victim.wav"), str(output)], root, root / "out"
    )
    assert victim.read_bytes() == b"data" and output.exists()
    remove_uploads([str(upload)], root, root / "out")
    assert not upload.exists() and not (root / "abc123").exists()  # its emptied folder too


@SLOW
def test_many_clients_at_once_are_queued_or_refused(abuse_app: RunningApp, tmp_path: Path):
    """Defence: one model run at a time (concurrency_limit=1 on the "gpu" queue) and a bounded
    queue (transcribe_ui --max-queue): 24 gradio_client clients at once each get their own
    transcript or "queue is full", and the server stays up with bounded memory. Four of them send
    the very same file, which Gradio stores once: whoever comes after the first job deleted it gets
    localstt.web.app.UPLOAD_GONE, a clear sentence, not a crash."""
    speech, rate = sf.read(PHRASE_WAV, dtype="float32")
    inputs = []
    for i in range(20):  # 20 different files (a different length of trailing silence each)
        once_or_twice = [speech] if i % 2 else [speech, np.zeros(rate, np.float32), speech]
        inputs.append(tmp_path / f"client{i}.wav")
        sf.write(inputs[-1], np.concatenate([*once_or_twice, np.zeros(100 * (i + 1), np.float32)]), rate)
    inputs += [PHRASE_WAV] * 4
    start = threading.Barrier(len(inputs))

    def one(path: Path) -> str:
        client = Client(abuse_app.url, verbose=False)
        start.wait(timeout=120)
        try:
            return client.predict(
                [handle_file(str(path))], None, "parakeet", ["txt"], api_name="/transcribe"
            )[0]
        except QueueError as error:
            return f"refused: {error}"
        except AppError as error:
            return f"refused: {error}"

    before = abuse_app.model_runs()
    with ThreadPoolExecutor(len(inputs)) as pool:
        results = list(pool.map(one, inputs, timeout=600))
    runs = abuse_app.model_runs()
    served = sum(not r.startswith("refused") for r in results)
    assert runs.calls - before.calls >= served, (before, runs, served)
    assert runs.most_at_once == 1, runs  # never two jobs in the model at once
    for index, result in enumerate(results):
        expected = f"{PHRASE} {PHRASE}" if index < 20 and index % 2 == 0 else PHRASE
        allowed = {expected, "refused: Queue is full! Please try again."}
        assert result in allowed or (index >= 20 and "no longer on the server" in result), result
    assert sum(not r.startswith("refused") for r in results) >= 1
    FIGURES["24 clients"] = {"served": sum(not r.startswith("refused") for r in results)}
    assert_still_serving(abuse_app, "after 24 clients at once")


def burst_while_busy(app: RunningApp, long_one: Path, size: int) -> list[httpx.Response] | None:
    """`size` queue joins sent at once while a long job runs; None when that job ended before the
    burst did (a machine so fast that the burst proved nothing)."""
    blocker = Client(app.url, verbose=False).submit(
        [handle_file(str(long_one))], None, "parakeet", ["txt"], api_name="/transcribe"
    )
    busy = ("PROCESSING", "PROGRESS")
    deadline = time.monotonic() + 60
    while blocker.status().code.name not in busy and time.monotonic() < deadline:
        time.sleep(0.05)
    dependencies = httpx.get(f"{app.url}config", timeout=30).json()["dependencies"]
    fn_index = next(d["id"] for d in dependencies if d.get("api_name") == "transcribe")
    (stored,) = httpx.post(
        f"{app.url}gradio_api/upload", files={"files": ("x.wav", PHRASE_WAV.read_bytes())}, timeout=30
    ).json()

    data = with_defaults(app, [[file_data(stored)], None, "parakeet", ["txt"]])

    def join(index: int) -> httpx.Response:
        body = {"data": data, "fn_index": fn_index}
        body |= {"event_data": None, "session_hash": f"burst{index}", "trigger_id": None}
        return httpx.post(f"{app.url}gradio_api/queue/join?api_name=transcribe", json=body, timeout=30)

    with ThreadPoolExecutor(size) as pool:
        answers = list(pool.map(join, range(size)))
    still_busy = not blocker.done() and blocker.status().code.name in busy
    assert blocker.result(timeout=600)[0].startswith(PHRASE)
    return answers if still_busy else None


@SLOW
def test_queue_beyond_its_cap_refuses_at_once(abuse_app: RunningApp, tmp_path: Path):
    """Defence: transcribe_ui --max-queue (Gradio's queue max_size): while a job runs, at most 8
    requests wait; the rest get HTTP 503 "Queue is full" at once instead of piling up in memory."""
    speech, rate = sf.read(PHRASE_WAV, dtype="float32")
    # 28 s, 55 s, 110 s of speech: long enough to outlast the burst, even on a busy machine. Not
    # longer: full attention on 220 s would itself take ~420 MB here, beyond the memory bound.
    for repeats in (8, 16, 32):
        long_one = tmp_path / f"long{repeats}.opus"
        with av.open(str(long_one), "w") as out:  # libopus at 16 kb/s, in-process through PyAV
            stream = out.add_stream("libopus", rate=rate, layout="mono")
            stream.bit_rate = 16_000
            samples = np.tile(speech, repeats).astype(np.float32).reshape(1, -1)
            frame = av.AudioFrame.from_ndarray(samples, format="flt", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = rate, 0, Fraction(1, rate)
            out.mux(stream.encode(frame))
            out.mux(stream.encode(None))
        if (answers := burst_while_busy(abuse_app, long_one, 30)) is not None:
            break
    else:
        pytest.fail("the server finished 110 s of audio before 30 requests arrived")
    refused_now = [a for a in answers if a.status_code == 503]
    assert all(a.status_code in (200, 503) for a in answers), [a.text for a in answers]
    # At most the 8 waiting plus one being handed to the worker are taken; the rest are refused.
    assert 1 <= len(answers) - len(refused_now) <= 9 and all("Queue is full" in a.text for a in refused_now)
    FIGURES["burst of 30"] = {"accepted": len(answers) - len(refused_now), "refused": len(refused_now)}
    assert_still_serving(abuse_app, "after a burst beyond the queue")


@SLOW
def test_uploads_and_job_files_are_gone_after_the_job_also_on_error(abuse_app: RunningApp, tmp_path: Path):
    """Defence: localstt.web.app.TranscriptionApp.transcribe deletes the uploads in a `finally` (so on
    error too); its transcript files live only in its own folder inside Gradio's upload folder (no
    second copy in Gradio's cache), and JobFolders.remove_old, which every job runs first, deletes the
    folders of the jobs that ended --keep-outputs-minutes ago and no others; nothing is left in TMPDIR.
    The module keeps outputs 60 minutes: this job's folder goes only because the test ages it past
    that (its mtime, which is what JobFolders reads) and starts the next job."""
    assert_still_serving(abuse_app, "before the privacy check")  # let earlier queued jobs finish
    before = abuse_app.files()
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF\xff\xff\x00\x00WAVEfmt " + os.urandom(5000))
    speech = tmp_path / "speech.flac"
    sf.write(speech, *sf.read(PHRASE_WAV, dtype="float32"))
    text, _, downloads, _ = transcribe(abuse_app, speech, ("txt", "srt", "vtt", "json"))
    assert text == PHRASE and len(downloads) == 4
    refused(abuse_app, broken)
    new = abuse_app.files() - before
    outputs = [p for p in new if p.parent.parent.name.startswith("localstt-out-")]
    assert sorted(p.name for p in outputs) == ["speech.json", "speech.srt", "speech.txt", "speech.vtt"]
    assert new == set(outputs), new  # no upload, no copy of the transcripts, nothing in TMPDIR
    assert [p for p in abuse_app.upload_dir.rglob("*") if p.name in ("speech.flac", "broken.wav")] == []

    job_dir = outputs[0].parent
    recent = sorted(p for p in job_dir.parent.glob("job-*") if p != job_dir)  # the module's other jobs
    assert recent, "the module's earlier jobs left no folder to keep"
    ended = time.time() - KEEP_MINUTES * 60 - 60  # a minute past the retention
    os.utime(job_dir, (ended, ended))
    assert transcribe(abuse_app, PHRASE_WAV)[0] == PHRASE  # the next job sweeps first
    assert not job_dir.exists()  # the transcripts are gone...
    assert {p.parent.parent for p in abuse_app.files() - before} == {job_dir.parent}  # (the new job's)
    assert [p for p in recent if not p.exists()] == []  # ...and only those: the others are kept


@SLOW
def test_transcripts_are_not_written_to_the_log(abuse_app: RunningApp):
    """Defence: nothing in transcribe_ui or the engine logs transcript text; the server's
    stdout/stderr after all the jobs of this module holds no word of it."""
    assert_still_serving(abuse_app, "before reading the log")
    log = abuse_app.log.read_text().lower()
    assert "quick brown fox" not in log and "lazy dog" not in log


@SLOW
def test_server_listens_on_loopback_only_by_default(abuse_app: RunningApp):
    """Defence: [app] host defaults to 127.0.0.1 (localstt.config, used by transcribe_ui.main):
    the listening socket is bound to 127.0.0.1, not to every interface."""
    port = int(abuse_app.url.rsplit(":", 1)[1].strip("/"))
    listening = []
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{abuse_app.process.pid}/net/{table}").read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                listening.append(local.rsplit(":", 1)[0])
    assert listening == ["0100007F"]  # 127.0.0.1, little-endian hex


class Clock:
    """`time.time` for localstt.web.outputs alone: it stands still, where the test puts it."""

    def __init__(self) -> None:
        self.now = time.time()

    def time(self) -> float:
        return self.now


def test_old_outputs_are_removed_but_never_a_running_jobs(transcription_app, monkeypatch, tmp_path: Path):
    """Defence: JobFolders.remove_old skips job folders still being written and ages the others from
    the end of their job, so a sweep in the middle of a long job (here: from its progress callback,
    with the outputs' clock moved past the retention for it) cannot delete the files it is writing."""
    clock = Clock()
    monkeypatch.setattr(job_folders, "time", clock)
    start = clock.now
    app = transcription_app(keep_outputs_s=600)
    uploads = tmp_path / "uploads"

    def run_once() -> list[str]:
        uploads_now = []
        for name in ("one", "two"):  # two files: the first one's outputs exist while the second runs
            upload = uploads / name / f"{name}.wav"
            upload.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(PHRASE_WAV, upload)
            uploads_now.append(str(upload))
        sweeps = []

        def progress(fraction: float, desc: str = "") -> None:
            sweeps.append(desc)
            clock.now = time.time() + 3600  # by this clock every folder is older than the retention
            try:
                app.outputs.remove_old()  # as the background sweeper would, mid-job
            finally:
                clock.now = start

        _, _, written, _ = app.transcribe(uploads_now, None, "parakeet", ["txt"], progress)
        assert len(written) == 2 and sweeps
        assert all(Path(p).read_text().strip() == PHRASE for p in written)
        return written

    first = run_once()
    second = run_once()  # a sweep during it removed the first job's folder, which had ended
    assert not Path(first[0]).exists() and all(Path(p).exists() for p in second)


def test_the_sweeper_removes_old_outputs_when_no_job_comes(transcription_app, monkeypatch, tmp_path: Path):
    """Defence: JobFolders.start_sweeper: a background thread removes a job's folder keep_outputs_s
    after the job ended even when no other job comes, and not before. The outputs module's clock is
    the test's: it stands still until the test moves it past the retention."""
    clock = Clock()
    monkeypatch.setattr(job_folders, "time", clock)
    app = transcription_app(keep_outputs_s=1.0)  # the sweeper looks every 0.5 s
    sweeps = []
    remove_old = app.outputs.remove_old

    def counted() -> None:
        remove_old()
        sweeps.append(clock.now)

    monkeypatch.setattr(app.outputs, "remove_old", counted)
    upload = tmp_path / "uploads" / "one" / "phrase.wav"
    upload.parent.mkdir(parents=True)
    shutil.copyfile(PHRASE_WAV, upload)
    _, _, written, _ = app.transcribe([str(upload)], None, "parakeet", ["txt"])
    job_dir = Path(written[0]).parent
    swept = len(sweeps)

    def wait_for(what: str, done: Callable[[], bool]) -> None:
        deadline = time.monotonic() + 60
        while not done():
            if time.monotonic() > deadline:
                pytest.fail(
                    f"60 s and still not {what}: {len(sweeps)} sweeps, {sorted(job_dir.parent.iterdir())}"
                )
            time.sleep(0.05)

    wait_for("two sweeps after the job", lambda: len(sweeps) >= swept + 2)
    assert job_dir.exists() and Path(written[0]).read_text().strip() == PHRASE  # not old yet
    clock.now = time.time() + 2.0  # the job ended more than keep_outputs_s ago
    wait_for("removed by the sweeper", lambda: not job_dir.exists())
