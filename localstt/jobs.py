"""One recording of a job: transcribed and its files written, or its failure in one sentence.

The CLI and the web app run their recordings through `transcribe_file`, one after another. One file
that fails (whatever the error) costs only itself; an error that concerns the whole run (a
LocalSttError that is not `per_file`: the model is not exported or does not load) is raised, since no
other file could be done either.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from localstt import engine, subtitles
from localstt.errors import LocalSttError
from localstt.logfile import report_unexpected
from localstt.models import Progress
from localstt.options import TranscribeOptions
from localstt.store import ModelStore
from localstt.transcript import Transcript


@dataclass(frozen=True)
class FileResult:
    name: str  # the recording as the user knows it: the path given, or the upload's name
    transcript: Transcript | None = None
    written: tuple[Path, ...] = ()  # the files made, in the order of the formats
    failure: str = ""  # why it could not be done, one sentence; "" when it was


def transcribe_file(
    source: Path,
    model_key: str,
    options: TranscribeOptions,
    store: ModelStore,
    formats: Sequence[str],
    out_dir: Path,
    *,
    name: str | None = None,
    progress: Progress | None = None,
) -> FileResult:
    """Transcribe `source` and write `<stem of name>.<format>` in `out_dir` for each format.

    Args:
        name: the recording as the user knows it (default: the file's name); it names the output
            files and the failure.

    Returns:
        The result; `failure` is set when this file could not be done: an error of the recording
        itself (its one sentence), or an unexpected one (its traceback goes to the log file, which
        the sentence names).

    Raises:
        LocalSttError: one that concerns the whole run (`per_file` is False).
    """
    label = name or source.name
    try:
        transcript = engine.transcribe(source, model_key, options, store, progress)
        written = subtitles.write_outputs(transcript, formats, out_dir, Path(label).stem)
    except LocalSttError as error:
        if not error.per_file:
            raise
        return FileResult(label, failure=str(error))
    except Exception as error:  # one file's bad luck (NeMo, the disk...): the others go on
        doing = f"transcribing {label} with {model_key}"
        return FileResult(label, failure=report_unexpected(error, doing, store.config.path))
    return FileResult(label, transcript, tuple(written))
