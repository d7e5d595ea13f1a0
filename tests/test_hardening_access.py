"""Who can reach the web app: loopback by default, a password when it is reachable from elsewhere,
no share link unless asked, and no call home from the server."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AuthenticationError

from testkit.app import launch_app
from testkit.namespaces import require_user_namespace
from testkit.store_env import REPO_ROOT, Project
from testkit.tiny_models import PHRASE_TXT, PHRASE_WAV

PHRASE = PHRASE_TXT.read_text().strip()

# Runs a script with every connection and name lookup that would leave the machine refused and
# written down (loopback stays allowed: the server and its own start-up check use it).
NETWORK_WATCH = """
import sys
from testkit import offline
offline.main(["--allow-loopback", *sys.argv[1:]])
"""


def run_ui(project: Project, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, str(REPO_ROOT / "transcribe_ui.py"), "--config", str(project.config), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=project.env())


@pytest.mark.parametrize(
    "args",
    [("--host", "0.0.0.0"), ("--host", "::"), ("--host", "192.0.2.10"), ("--share",)],
    ids=["all-ipv4", "all-ipv6", "lan-address", "share"],
)
def test_reachable_from_elsewhere_without_a_password_is_refused(exported_project: Project, args):
    """Defence: transcribe_ui.main warns for any non-loopback address or --share, and refuses to
    start without --auth unless --allow-no-auth says so explicitly."""
    result = run_ui(exported_project, *args, "--port", "9")
    assert result.returncode == 2
    assert "WARNING: the app will be reachable from other machines" in result.stdout
    assert "add --auth user:password (or --allow-no-auth if you really mean it)" in result.stderr


def test_auth_must_be_user_and_password(exported_project: Project):
    """Defence: transcribe_ui.main refuses an --auth without both parts instead of serving openly."""
    for value in ("alice", "alice:", ":pw"):
        result = run_ui(exported_project, "--host", "0.0.0.0", "--auth", value, "--port", "9")
        assert result.returncode == 2 and "--auth takes user:password" in result.stderr


# Inside its own network namespace (only a loopback interface), so binding every interface
# exposes nothing to the machine's real network while the test runs.
ALL_INTERFACES = r"""
import fcntl, json, os, socket, struct, subprocess, sys, time, urllib.request

with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:  # `ip link set lo up`, without iproute2
    flags = struct.unpack("16sH", fcntl.ioctl(sock, 0x8913, struct.pack("16sH", b"lo", 0))[:18])[1]
    fcntl.ioctl(sock, 0x8914, struct.pack("16sH", b"lo", flags | 1))
port, log = sys.argv[1], sys.argv[2]
command = [sys.executable, *sys.argv[3:], "--host", "0.0.0.0", "--allow-no-auth", "--port", port]
with open(log, "w") as out:
    server = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
status, listening = None, []
deadline = time.monotonic() + 180
while time.monotonic() < deadline and server.poll() is None:
    try:
        status = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2).status
        break
    except OSError:
        time.sleep(0.3)
for line in open("/proc/net/tcp").read().splitlines()[1:]:
    local, state = line.split()[1], line.split()[3]
    if state == "0A" and int(local.split(":")[1], 16) == int(port):
        listening.append(local.split(":")[0])
server.terminate()
server.wait(timeout=30)
print(json.dumps({"status": status, "listening": listening}))
"""


def test_allow_no_auth_serves_on_every_interface_with_a_warning(exported_project: Project, tmp_path: Path):
    """Defence: --allow-no-auth is the one explicit way to serve without a password off loopback,
    and even then transcribe_ui.main prints the warning."""
    require_user_namespace("net")
    driver = tmp_path / "all_interfaces.py"
    driver.write_text(ALL_INTERFACES, encoding="utf-8")
    log = tmp_path / "server.log"
    app = [str(REPO_ROOT / "transcribe_ui.py"), "--config", str(exported_project.config)]
    result = subprocess.run(
        ["unshare", "--map-root-user", "--net", sys.executable, str(driver), "7860", str(log), *app],
        capture_output=True,
        text=True,
        timeout=300,
        env=exported_project.env(GRADIO_TEMP_DIR=str(tmp_path / "gradio")),
    )
    assert result.returncode == 0, result.stderr + log.read_text()
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome == {"status": 200, "listening": ["00000000"]}, log.read_text()  # 0.0.0.0
    assert "WARNING: the app will be reachable from other machines (0.0.0.0, share=False)" in log.read_text()


@pytest.mark.slow
def test_password_is_required_and_a_wrong_one_refused(exported_project: Project, tmp_path: Path, monkeypatch):
    """Defence: --auth user:password (transcribe_ui.main -> Gradio's login): every route needs the
    session cookie, a wrong password gets no cookie, the right one works. The same launch shows no
    share link was made and, with GRADIO_ANALYTICS_ENABLED unset, that the server calls no one
    (transcribe_ui turns Gradio's analytics off itself)."""
    attempts = tmp_path / "network-attempts.log"
    runner = tmp_path / "network_watch.py"
    runner.write_text(NETWORK_WATCH, encoding="utf-8")
    env = {"GRADIO_ANALYTICS_ENABLED": None, "OFFLINE_ATTEMPTS_FILE": str(attempts)}
    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "False")  # gradio_client here (the app: not set)
    with launch_app(
        exported_project, tmp_path / "app", "--auth", "alice:s3cret-pw", runner=runner, env=env
    ) as app:
        assert httpx.get(f"{app.url}config", timeout=10).status_code == 401
        upload = httpx.post(f"{app.url}gradio_api/upload", files={"files": ("a.wav", b"RIFF")}, timeout=10)
        assert upload.status_code == 401
        assert list(app.upload_dir.rglob("a.wav")) == []

        wrong = httpx.post(f"{app.url}login", data={"username": "alice", "password": "s3cret-pX"}, timeout=10)
        assert wrong.status_code == 400 and "Incorrect credentials" in wrong.text and not wrong.cookies
        with pytest.raises((AuthenticationError, ValueError), match="Could not login"):
            Client(app.url, auth=("alice", "wrong"), verbose=False)

        with httpx.Client(base_url=app.url, timeout=10) as session:
            right = session.post("login", data={"username": "alice", "password": "s3cret-pw"})
            assert right.status_code == 200
            assert session.get("config").status_code == 200
        client = Client(app.url, auth=("alice", "s3cret-pw"), verbose=False)
        text = client.predict(
            [handle_file(str(PHRASE_WAV))], None, "parakeet", ["txt"], api_name="/transcribe"
        )[0]
        assert text == PHRASE
        log = app.log.read_text()
    assert "gradio.live" not in log and "public link" not in log.replace("To create a public link", "")
    assert not attempts.exists(), attempts.read_text()
