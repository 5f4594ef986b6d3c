"""The command line: ``python -m pubsock module:attr`` and the ``pubsock`` script.

Argument and environment parsing, the app conventions, the refusal of ``--workers N`` without a broker,
and one real process stopped by SIGTERM (websockets get 1001). The multi-process runs with brokers are in
``tests/brokers/test_processes.py``.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect

import pubsock
from pubsock import cli

ROOT = Path(__file__).resolve().parents[1]
_modules = itertools.count()


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("PUBSOCK_") and name != "PUBSOCK_NO_EXTENSIONS":
            monkeypatch.delenv(name)
    monkeypatch.setattr(sys, "path", list(sys.path))


def write_module(tmp_path: Path, source: str) -> str:
    name = f"cli_app_{next(_modules)}"
    (tmp_path / f"{name}.py").write_text(source)
    return name


APP_SOURCE = """
import pubsock

def fetch(request, server):
    return pubsock.Response("hi")

class Chat:
    def message(self, ws, message):
        ws.send(message)
"""


# arguments and environment ---------------------------------------------------------------------


def test_flags() -> None:
    args = cli.parse_args(
        ["m:a", "--host", "0.0.0.0", "--port", "8080", "--workers", "3", "--broker", "redis://r:6379/1", "--log-level", "DEBUG"]
    )
    assert (args.app, args.host, args.port, args.workers, args.broker, args.log_level) == (
        "m:a",
        "0.0.0.0",
        8080,
        3,
        "redis://r:6379/1",
        "debug",
    )
    assert not args.reuse_port and args.ssl_certfile is None


def test_environment_mirrors_the_flags_and_flags_win(monkeypatch: pytest.MonkeyPatch) -> None:
    environment = {
        "PUBSOCK_APP": "env.mod:app",
        "PUBSOCK_HOST": "::1",
        "PUBSOCK_PORT": "9000",
        "PUBSOCK_WORKERS": "4",
        "PUBSOCK_BROKER": "nats://n:4222",
        "PUBSOCK_LOG_LEVEL": "warning",
        "PUBSOCK_SSL_CERTFILE": "cert.pem",
        "PUBSOCK_SSL_KEYFILE": "key.pem",
        "PUBSOCK_REUSE_PORT": "1",
    }
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    args = cli.parse_args([])
    assert (args.app, args.host, args.port, args.workers, args.broker, args.log_level) == (
        "env.mod:app",
        "::1",
        9000,
        4,
        "nats://n:4222",
        "warning",
    )
    assert (args.ssl_certfile, args.ssl_keyfile, args.reuse_port) == ("cert.pem", "key.pem", True)
    args = cli.parse_args(["flag.mod:app", "--port", "9001", "--workers", "1", "--broker", "redis://x"])
    assert (args.app, args.port, args.workers, args.broker) == ("flag.mod:app", 9001, 1, "redis://x")


@pytest.mark.parametrize(
    ("argv", "environment", "message"),
    [
        ([], {}, "the app is required"),
        (["m:a", "--workers", "0"], {}, "--workers must be at least 1"),
        (["m:a", "--port", "70000"], {}, "--port must be"),
        (["m:a", "--ssl-keyfile", "k.pem"], {}, "--ssl-keyfile needs --ssl-certfile"),
        (["m:a", "--log-level", "loud"], {}, "invalid choice"),
        (["m:a"], {"PUBSOCK_PORT": "eighty"}, "argument --port: invalid int value: 'eighty'"),
    ],
)
def test_usage_errors_exit_2(
    argv: list[str], environment: dict[str, str], message: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as exit_info:
        cli.parse_args(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


# the app conventions ---------------------------------------------------------------------------


def test_a_mapping_of_serve_arguments(tmp_path: Path) -> None:
    name = write_module(tmp_path, APP_SOURCE + "app = {'fetch': fetch, 'websocket': Chat(), 'port': 4000}\n")
    options = cli.load_app(f"{name}:app", str(tmp_path))
    assert set(options) == {"fetch", "websocket", "port"} and options["port"] == 4000


def test_the_attribute_defaults_to_app(tmp_path: Path) -> None:
    name = write_module(tmp_path, APP_SOURCE + "app = {'fetch': fetch}\n")
    assert set(cli.load_app(name, str(tmp_path))) == {"fetch"}


def test_an_object_with_attributes(tmp_path: Path) -> None:
    source = APP_SOURCE + (
        "class App:\n"
        "    websocket = Chat()\n"
        "    hostname = '127.0.0.2'\n"
        "    def fetch(self, request, server):\n"
        "        return None\n"
        "    def unrelated(self):\n"
        "        pass\n"
        "holder = type('Holder', (), {'app': App()})\n"
    )
    name = write_module(tmp_path, source)
    options = cli.load_app(f"{name}:holder.app", str(tmp_path))
    assert set(options) == {"fetch", "websocket", "hostname"}


def test_a_factory_is_called_once(tmp_path: Path) -> None:
    source = APP_SOURCE + "calls = []\ndef create():\n    calls.append(1)\n    return {'fetch': fetch}\n"
    name = write_module(tmp_path, source)
    options = cli.load_app(f"{name}:create", str(tmp_path))
    assert set(options) == {"fetch"} and sys.modules[name].calls == [1]  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("source", "spec", "message"),
    [
        ("", "no_such_module_here:app", "no such module"),
        (APP_SOURCE, "{name}:missing", "has no attribute 'missing'"),
        (APP_SOURCE + "app = {'fetch': fetch, 'prot': 1}\n", "{name}:app", "unknown keys ['prot']"),
        (APP_SOURCE + "app = {'websocket': Chat()}\n", "{name}:app", "needs fetch"),
        (APP_SOURCE + "app = Chat()\n", "{name}:app", "needs fetch"),
        (APP_SOURCE, "{name}:fetch", "a callable that needs arguments"),
    ],
)
def test_what_is_not_an_app(tmp_path: Path, source: str, spec: str, message: str) -> None:
    name = write_module(tmp_path, source)
    with pytest.raises(cli.UsageError, match=message.replace("[", r"\[").replace("]", r"\]")):
        cli.load_app(spec.format(name=name), str(tmp_path))


def test_errors_inside_the_app_module_are_not_hidden(tmp_path: Path) -> None:
    name = write_module(tmp_path, "import not_installed_dependency_xyz\n")
    with pytest.raises(ModuleNotFoundError):
        cli.load_app(f"{name}:app", str(tmp_path))


def test_flags_override_the_app() -> None:
    app: dict[str, Any] = {"fetch": print, "port": 4000, "hostname": "127.0.0.2", "broker": "local://"}
    args = cli.parse_args(["m:a", "--port", "5000", "--broker", "redis://r", "--ssl-certfile", "c.pem", "--reuse-port"])
    options = cli.resolve_options(args, app)
    assert options == {
        "fetch": print,
        "port": 5000,
        "hostname": "127.0.0.2",
        "broker": "redis://r",
        "tls": {"certfile": "c.pem"},
        "reuse_port": True,
    }
    assert app["port"] == 4000  # the app's own mapping is left alone
    assert cli.resolve_options(cli.parse_args(["m:a"]), app) == app


# refusing to start -----------------------------------------------------------------------------


def test_workers_without_a_broker_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    name = write_module(tmp_path, APP_SOURCE + "app = {'fetch': fetch, 'websocket': Chat()}\n")
    assert cli.main([f"{name}:app", "--app-dir", str(tmp_path), "--workers", "2", "--port", "3999"]) == 2
    error = capsys.readouterr().err
    assert "--workers 2 needs --broker" in error and "silently" in error


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--workers", "2", "--broker", "redis://r", "--port", "0"], "needs a fixed --port"),
        (["--workers", "2", "--broker", "local://", "--port", "3999"], "local:// lives in one process"),
        (["--broker", "kafka://k:9092"], "unknown broker URL scheme 'kafka'"),
        (["--broker", "redis://r?unsubscribe_delay=soon"], "is not a number"),
    ],
)
def test_bad_options_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str) -> None:
    name = write_module(tmp_path, APP_SOURCE + "app = {'fetch': fetch}\n")
    assert cli.main([f"{name}:app", "--app-dir", str(tmp_path), *extra]) == 2
    assert message in capsys.readouterr().err


def test_the_worker_command_repeats_the_resolved_options() -> None:
    args = cli.parse_args(["m:a", "--workers", "2", "--broker", "nats://n", "--ssl-certfile", "c", "--ssl-keyfile", "k"])
    command = cli.worker_command(args, {"hostname": "0.0.0.0", "port": 8000, "broker": "nats://n"})
    assert command[:4] == [sys.executable, "-m", "pubsock", "m:a"]
    text = " ".join(command)
    for part in ("--workers 1", "--reuse-port", "--host 0.0.0.0", "--port 8000", "--broker nats://n", "--ssl-certfile c", "--ssl-keyfile k"):
        assert part in text


# a real process --------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.timeout(30)
def test_one_process_serves_and_stops_on_sigterm_with_1001(tmp_path: Path) -> None:
    port = _free_port()
    log = tmp_path / "pubsock.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PUBSOCK_")}
    env.update(PUBSOCK_PORT=str(port), PUBSOCK_LOG_LEVEL="debug")  # configured through the environment
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "pubsock", "examples.scaleout.app:app"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 20
        while "pubsock listening on" not in log.read_text():
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.02)

        async def scenario() -> tuple[list[str | bytes], int | None]:
            async with connect(f"ws://127.0.0.1:{port}/ws?room=r&name=ann") as ws:
                welcome = await ws.recv()
                await ws.send("hello")
                echo = await ws.recv()  # publish_to_self: one process, no broker
                process.send_signal(signal.SIGTERM)
                await asyncio.wait_for(ws.wait_closed(), 10)
                return [welcome, echo], ws.close_code

        messages, code = asyncio.run(scenario())
        assert messages == [f"* node {process.pid}", "ann: hello"]
        assert code == 1001
        assert process.wait(10) == 0
        assert "stopping (websockets get Close 1001)" in log.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_the_pubsock_script_and_version() -> None:
    script = Path(sys.executable).with_name("pubsock")
    assert script.exists(), "pip install -e . installs the pubsock script ([project.scripts])"
    answer = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=30)
    assert answer.returncode == 0 and answer.stdout.strip() == f"pubsock {pubsock.__version__}"


# ASGI, metrics and close timeout flags ---------------------------------------------------------

ASGI_SOURCE = """
async def asgi(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"from asgi"})
"""


def test_asgi_flag_names_the_app_itself_and_makes_the_positional_app_optional(tmp_path: Path) -> None:
    name = write_module(tmp_path, ASGI_SOURCE)
    args = cli.parse_args(["--asgi", f"{name}:asgi", "--app-dir", str(tmp_path), "--metrics-path", "/metrics", "--close-timeout", "2.5"])
    options = cli.resolve_options(args, {})
    module = sys.modules[name]
    assert options == {"asgi": module.asgi, "metrics_path": "/metrics", "close_timeout": 2.5}
    command = " ".join(cli.worker_command(args, {"port": 8000}))
    assert f"--asgi {name}:asgi" in command and "--metrics-path /metrics" in command and "--close-timeout 2.5" in command
    assert "-m pubsock --workers" in command  # no positional app to repeat


def test_the_environment_mirrors_the_new_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PUBSOCK_ASGI", "m:asgi")
    monkeypatch.setenv("PUBSOCK_METRICS_PATH", "/m")
    monkeypatch.setenv("PUBSOCK_CLOSE_TIMEOUT", "3")
    args = cli.parse_args([])
    assert (args.asgi, args.metrics_path, args.close_timeout) == ("m:asgi", "/m", 3.0)


@pytest.mark.timeout(30)
def test_an_asgi_only_process_answers_http(tmp_path: Path) -> None:
    name = write_module(tmp_path, ASGI_SOURCE)
    port = _free_port()
    command = [sys.executable, "-m", "pubsock", "--asgi", f"{name}:asgi", "--app-dir", str(tmp_path), "--port", str(port)]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                    sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    answer = b""
                    while chunk := sock.recv(4096):
                        answer += chunk
                break
            except OSError:
                assert time.monotonic() < deadline, process.stderr.read() if process.poll() is not None else "no listener"
                time.sleep(0.1)
        assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"from asgi")
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        assert process.stderr is not None
        process.stderr.close()
