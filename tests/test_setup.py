"""scripts/ensure-uv.sh gets a working uv from nothing but what a stock system has.

Each test runs the script in an environment it builds itself, as ``env -i`` would: the system PATH, a
fresh HOME, and only the machine's certificate and pip settings passed through. The installing tests
download uv from the package index through pip (about 20 MB each).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "ensure-uv.sh"
SYSTEM_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
SYSTEM_PYTHON = Path("/usr/bin/python3")
BASH = shutil.which("bash", path=SYSTEM_PATH) or "/bin/bash"
CERT_VARIABLES = ("SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")
DOCS = "docs.astral.sh"

needs_system_python = pytest.mark.skipif(not SYSTEM_PYTHON.exists(), reason="no /usr/bin/python3 here")
installs = pytest.mark.slow  # downloads uv from the package index (or waits for it not to answer)


def user_pip_config() -> str | None:
    """The pip.conf of the user running the tests: a fresh HOME would hide it, so it is named instead."""
    config_home = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    for candidate in (config_home / "pip" / "pip.conf", Path.home() / ".pip" / "pip.conf"):
        if candidate.is_file():
            return str(candidate)
    return None


def clean_env(home: Path, path: str = SYSTEM_PATH, pip_settings: bool = True) -> dict[str, str]:
    env = {"PATH": path, "HOME": str(home)}
    for name, value in os.environ.items():
        if name in CERT_VARIABLES or (pip_settings and name.startswith("PIP_")):
            env[name] = value
    if pip_settings and "PIP_CONFIG_FILE" not in env and (config := user_pip_config()):
        env["PIP_CONFIG_FILE"] = config
    return env


def run_script(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([BASH, str(SCRIPT)], env=env, capture_output=True, text=True, timeout=600)


def tools_dir(home: Path) -> Path:
    return home / ".local" / "share" / "localstt"


def assert_working_uv(result: subprocess.CompletedProcess[str], home: Path) -> Path:
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1, f"stdout must hold only the path: {result.stdout!r}"
    uv = Path(lines[0])
    assert uv.is_file()
    assert uv.resolve().is_relative_to(home.resolve())
    assert uv == tools_dir(home) / "uv" / "bin" / "uv"
    version = subprocess.run([str(uv), "--version"], capture_output=True, text=True, check=True).stdout
    assert re.fullmatch(r"uv \d+\.\d+\.\d+\S*( .*)?\n", version), version
    assert sorted(p.name for p in tools_dir(home).iterdir()) == ["uv"], "temporary folders left behind"
    return uv


def write_script(path: Path, text: str) -> Path:
    path.write_text("#!/bin/bash\n" + text)
    path.chmod(0o755)
    return path


def fresh_home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    return home


@installs
@needs_system_python
def test_installs_uv_with_the_externally_managed_system_python(tmp_path: Path) -> None:
    stdlib = subprocess.run(
        [str(SYSTEM_PYTHON), "-c", "import sysconfig; print(sysconfig.get_path('stdlib'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert (Path(stdlib) / "EXTERNALLY-MANAGED").is_file(), "this test is about a PEP 668 Python"
    assert shutil.which("python3", path=SYSTEM_PATH) == str(SYSTEM_PYTHON)

    home = fresh_home(tmp_path)
    assert_working_uv(run_script(clean_env(home)), home)


@installs
@needs_system_python
def test_a_python_without_pip_first_on_path(tmp_path: Path) -> None:
    nopip = tmp_path / "nopip"
    subprocess.run([str(SYSTEM_PYTHON), "-m", "venv", "--without-pip", str(nopip)], check=True)
    probe = subprocess.run([str(nopip / "bin" / "python3"), "-m", "pip", "--version"], capture_output=True)
    assert probe.returncode != 0, "this Python was meant to have no pip"

    home = fresh_home(tmp_path)
    result = run_script(clean_env(home, path=f"{nopip / 'bin'}:{SYSTEM_PATH}"))
    assert_working_uv(result, home)
    assert str(nopip / "bin" / "python3") in result.stderr, "the pip-less Python was not the one tried first"


@installs
@needs_system_python
def test_pip_target_where_venv_fails(tmp_path: Path) -> None:
    """A python3 whose venv module fails: uv comes from pip --target, which PEP 668 does not block."""
    if subprocess.run([str(SYSTEM_PYTHON), "-m", "pip", "--version"], capture_output=True).returncode:
        pytest.skip("/usr/bin/python3 has no pip here, so there is no --target route to test")
    fake = tmp_path / "fake"
    fake.mkdir()
    write_script(
        fake / "python3",
        f'if [ "$1" = -m ] && [ "$2" = venv ]; then echo "no venv" >&2; exit 1; fi\n'
        f'exec {SYSTEM_PYTHON} "$@"\n',
    )
    home = fresh_home(tmp_path)
    result = run_script(clean_env(home, path=f"{fake}:{SYSTEM_PATH}"))
    uv = assert_working_uv(result, home)
    assert "--target" in result.stderr
    assert not (uv.parent.parent / "pyvenv.cfg").exists(), "expected the --target layout, not a venv"


@installs
@needs_system_python
def test_a_second_run_reuses_the_installed_uv(tmp_path: Path) -> None:
    home = fresh_home(tmp_path)
    uv = assert_working_uv(run_script(clean_env(home)), home)
    before = [(p, p.stat().st_ino, p.stat().st_mtime_ns) for p in (uv, uv.parent, uv.parent.parent)]

    recorder = tmp_path / "recorder"
    recorder.mkdir()
    calls = tmp_path / "python-calls.log"
    for name in ("python3", "python3.13", "python3.12", "python3.11", "python3.10", "python"):
        write_script(recorder / name, f'echo "$0 $*" >> {calls}\nexec {SYSTEM_PYTHON} "$@"\n')

    again = run_script(clean_env(home, path=f"{recorder}:{SYSTEM_PATH}"))
    assert again.returncode == 0, again.stderr
    assert again.stdout == f"{uv}\n"
    assert not calls.exists(), f"a Python was run: {calls.read_text()}"
    assert [(p, p.stat().st_ino, p.stat().st_mtime_ns) for p in (uv, uv.parent, uv.parent.parent)] == before


def test_no_python_at_all_gives_one_sentence(tmp_path: Path) -> None:
    tools = tmp_path / "tools"
    tools.mkdir()
    names = "bash env cat cp dirname basename ls mkdir mktemp mv rm rmdir readlink find grep sed touch chmod"
    for name in (*names.split(), "head", "tail", "tr", "uname", "id"):
        if found := shutil.which(name, path=SYSTEM_PATH):
            (tools / name).symlink_to(found)
    for name in ("python", "python3", "python3.11", "pip", "uv"):
        assert shutil.which(name, path=str(tools)) is None

    home = fresh_home(tmp_path)
    result = run_script(clean_env(home, path=str(tools)))
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and DOCS in lines[0], result.stderr
    assert not tools_dir(home).exists()


@installs
@needs_system_python
def test_an_unreachable_index_leaves_nothing_behind(tmp_path: Path) -> None:
    empty = tmp_path / "no-wheels"
    empty.mkdir()
    home = fresh_home(tmp_path)
    env = clean_env(home, pip_settings=False) | {
        "PIP_CONFIG_FILE": os.devnull,  # no pip.conf at all
        "PIP_NO_INDEX": "1",
        "PIP_FIND_LINKS": str(empty),
    }
    result = run_script(env)
    assert result.returncode == 1
    assert result.stdout == ""
    assert DOCS in result.stderr.splitlines()[-1]
    assert list(tools_dir(home).iterdir()) == []


@installs
@needs_system_python
def test_a_killed_install_leaves_nothing_half_made(tmp_path: Path) -> None:
    fake = tmp_path / "fake"
    fake.mkdir()
    reached = tmp_path / "venv-made"
    write_script(
        fake / "python3",
        f'if [ "$1" = -m ] && [ "$2" = venv ]; then\n'
        f'  {SYSTEM_PYTHON} "$@" && touch {reached} && sleep 300\n'
        "fi\n"
        f'exec {SYSTEM_PYTHON} "$@"\n',
    )
    home = fresh_home(tmp_path)
    process = subprocess.Popen(
        [BASH, str(SCRIPT)],
        env=clean_env(home, path=f"{fake}:{SYSTEM_PATH}"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not reached.exists():
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the venv step was never reached"
            time.sleep(0.1)
        assert list(tools_dir(home).glob(".uv-tmp.*/uv/pyvenv.cfg")), (
            "expected a half-made venv in a temp folder"
        )
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
    assert not (tools_dir(home) / "uv").exists()

    result = run_script(clean_env(home))
    assert result.returncode == 0, result.stderr
    uv = Path(result.stdout.strip())
    assert uv == tools_dir(home) / "uv" / "bin" / "uv"
    assert subprocess.run([str(uv), "--version"], capture_output=True, text=True).stdout.startswith("uv ")
