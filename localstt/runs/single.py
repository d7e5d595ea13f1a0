"""One recording into a folder: transcribed and its files written, or its failure in one sentence.

The page runs each recording of a job through `transcribe_file`. One file that fails (whatever the
error) costs only itself; an error that concerns the whole run (a LocalSttError that is not
`per_file`: the model is not exported or does not load) is raised, since no other file could be done.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from localstt import engine
from localstt import formats as writers
from localstt.errors import LocalSttError
from localstt.logfile import report_unexpected
from localstt.models import Progress
from localstt.options import TranscribeOptions
from localstt.runs.result import RecordingResult
from localstt.store import ModelStore
from localstt.subtitles import DEFAULT_LAYOUT, SubtitleLayout


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
    layout: SubtitleLayout = DEFAULT_LAYOUT,
) -> RecordingResult:
    """Transcribe `source` and write `<stem of name>.<format>` in `out_dir` for each format.

    Args:
        name: the recording as the user knows it (default: the file's name); it names the output
            files and the failure.
        layout: the subtitles' line controls.

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
        written = writers.write_outputs(transcript, formats, out_dir, Path(label).stem, layout)
    except LocalSttError as error:
        if not error.per_file:
            raise
        return RecordingResult(0, source, failure=str(error), name=label)
    except Exception as error:  # one file's bad luck (NeMo, the disk...): the others go on
        doing = f"transcribing {label} with {model_key}"
        return RecordingResult(
            0, source, failure=report_unexpected(error, doing, store.config.path), name=label
        )
    return RecordingResult(0, source, transcript, outputs=tuple(written), name=label)
