"""The log file (localstt/logfile.py): tracebacks go there, and a log that cannot be written is
one sentence, never a second error."""

from __future__ import annotations

from pathlib import Path

import pytest

from localstt.logfile import LOG_DIR_ENV, report_unexpected


def raised() -> RuntimeError:
    try:
        raise RuntimeError("the disk said no")
    except RuntimeError as error:
        return error


def test_the_traceback_goes_to_the_file_and_the_sentence_names_it(tmp_path, monkeypatch):
    monkeypatch.setenv(LOG_DIR_ENV, str(tmp_path))
    sentence = report_unexpected(raised(), "testing the log")
    log = tmp_path / "localstt.log"
    assert sentence == f"unexpected RuntimeError (the disk said no); details are in {log}"
    text = log.read_text(encoding="utf-8")
    assert "testing the log failed" in text and "Traceback (most recent call last)" in text


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (a device that is always full)")
def test_a_full_disk_under_the_log_is_one_sentence(tmp_path, monkeypatch):
    (tmp_path / "localstt.log").symlink_to("/dev/full")
    monkeypatch.setenv(LOG_DIR_ENV, str(tmp_path))
    for _ in range(2):  # and the next report says so again, rather than failing
        sentence = report_unexpected(raised(), "testing the log")
        assert sentence == (
            "unexpected RuntimeError (the disk said no); the log file "
            f"{tmp_path / 'localstt.log'} could not be written ([Errno 28] No space left on device)"
        )
    elsewhere = tmp_path / "other"
    monkeypatch.setenv(LOG_DIR_ENV, str(elsewhere))  # the full one is let go of, and the next log works
    assert report_unexpected(raised(), "testing the log").endswith(
        f"details are in {elsewhere / 'localstt.log'}"
    )
