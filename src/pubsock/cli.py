"""``python -m pubsock module:attr``: serve an app from the command line, on one or N processes.

The app (``module:attr``, ``attr`` defaulting to ``app``) is what you would pass to
``pubsock.serve()``, Bun's ``export default { fetch, websocket }`` in Python:

- a mapping of ``serve()`` keyword arguments: ``app = {"fetch": fetch, "websocket": Chat()}``;
- or an object whose attributes carry them (``fetch``, ``websocket``, ``error``, ``port``, ...);
- or a factory called with no arguments that returns one of those (any callable without a
  ``fetch`` attribute), run once in every worker process.

Command-line flags override the app's values; each flag has an environment variable
(``--port`` / ``PUBSOCK_PORT``, ...) that the flag in turn overrides.

``--workers N`` (N > 1) starts N worker processes that share the port (``SO_REUSEPORT``)
and a supervisor that restarts a worker that dies. It needs a broker: without one each
worker would have its own topics and a publish would reach only the subscribers that
happen to share its process. SIGTERM or SIGINT stops the workers gracefully (websockets
get Close 1001); SIGHUP restarts them one at a time, each replacement listening before
its predecessor closes its websockets with 1012 (service restart). A second SIGTERM or
SIGINT ends everything at once.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import inspect
import logging
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import __version__
from .brokers import resolve_broker
from .server.server import Server

__all__ = ["main", "load_app", "parse_args", "ENV_PREFIX"]

ENV_PREFIX = "PUBSOCK_"
SUPERVISOR_ENV = "PUBSOCK_SUPERVISOR_PID"  # set in workers: the supervisor's pid (workers stop if it goes away)
READY_FD_ENV = "PUBSOCK_READY_FD"  # set in workers: a pipe to write one byte to once listening
LOG_LEVELS = ("critical", "error", "warning", "info", "debug")
LOG_FORMAT = "%(asctime)s [%(process)d] %(levelname)s %(name)s: %(message)s"
WORKER_START_TIMEOUT = 30.0  # seconds a worker may take to import the app and listen
WORKER_STOP_TIMEOUT = 15.0  # seconds the supervisor waits for workers to stop gracefully before SIGKILL
MAX_RESTART_DELAY = 5.0  # seconds: the longest pause before restarting a worker that keeps crashing
RESTART_CODE = 1012  # Close code for websockets of a worker replaced by SIGHUP

logger = logging.getLogger("pubsock.cli")


class UsageError(Exception):
    """A problem with the command line or the app: reported in one line, exit status 2."""


# arguments -------------------------------------------------------------------------------------


def _env(name: str) -> str | None:
    value = os.environ.get(ENV_PREFIX + name)
    return value if value not in (None, "") else None


def _env_bool(name: str) -> bool:
    value = (_env(name) or "").lower()
    return value in ("1", "true", "yes", "on")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pubsock",
        description="Serve a pubsock app: python -m pubsock module:attr [options]",
        epilog="Every option also reads an environment variable (PUBSOCK_PORT, PUBSOCK_BROKER, ...); "
        "the flag wins. See docs/scale-out.md.",
    )
    parser.add_argument(
        "app",
        nargs="?",
        default=_env("APP"),
        help="module:attr naming the app: a mapping or object with serve() keyword arguments "
        "(fetch, websocket, ...), or a factory returning one [PUBSOCK_APP]",
    )
    parser.add_argument("--host", "--hostname", dest="host", default=_env("HOST"), help="address to bind (default 127.0.0.1) [PUBSOCK_HOST]")
    parser.add_argument("--port", type=int, default=_env("PORT"), help="port to bind (default 3000) [PUBSOCK_PORT]")
    parser.add_argument(
        "--workers",
        type=int,
        default=_env("WORKERS") or "1",
        help="worker processes sharing the port (SO_REUSEPORT); more than 1 needs --broker [PUBSOCK_WORKERS]",
    )
    parser.add_argument(
        "--broker",
        default=_env("BROKER"),
        help="redis://host:port/db, nats://host:port or local://; carries publishes between processes [PUBSOCK_BROKER]",
    )
    parser.add_argument(
        "--reuse-port",
        action="store_true",
        default=_env_bool("REUSE_PORT"),
        help="bind with SO_REUSEPORT so that several pubsock processes share the port [PUBSOCK_REUSE_PORT]",
    )
    parser.add_argument(
        "--log-level",
        choices=LOG_LEVELS,
        type=str.lower,
        default=(_env("LOG_LEVEL") or "info").lower(),
        help="logging level (default info) [PUBSOCK_LOG_LEVEL]",
    )
    parser.add_argument("--ssl-certfile", default=_env("SSL_CERTFILE"), help="TLS certificate chain (PEM) [PUBSOCK_SSL_CERTFILE]")
    parser.add_argument("--ssl-keyfile", default=_env("SSL_KEYFILE"), help="TLS private key (PEM) [PUBSOCK_SSL_KEYFILE]")
    parser.add_argument(
        "--app-dir",
        default=_env("APP_DIR") or ".",
        help="directory put first on sys.path to import the app (default: the current directory) [PUBSOCK_APP_DIR]",
    )
    parser.add_argument(
        "--asgi",
        default=_env("ASGI"),
        help="module:attr naming an ASGI 3 app that answers what fetch leaves (the positional app is then "
        "optional) [PUBSOCK_ASGI]",
    )
    parser.add_argument(
        "--metrics-path",
        default=_env("METRICS_PATH"),
        help="answer Prometheus text on this path, e.g. /metrics [PUBSOCK_METRICS_PATH]",
    )
    parser.add_argument(
        "--close-timeout",
        type=float,
        default=_env("CLOSE_TIMEOUT"),
        help="seconds a peer gets to finish the close handshake, and stop's grace period [PUBSOCK_CLOSE_TIMEOUT]",
    )
    parser.add_argument("--version", action="version", version=f"pubsock {__version__}")
    return parser


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line (and the PUBSOCK_* environment). Exits with status 2 on a usage error."""
    parser = build_parser()
    args = parser.parse_args(argv)  # string defaults from the environment go through ``type`` too
    if args.app is None and args.asgi is None:
        parser.error("the app is required: python -m pubsock module:attr (or PUBSOCK_APP, or --asgi module:attr)")
    if args.workers < 1:
        parser.error(f"--workers must be at least 1, got {args.workers}")
    if args.port is not None and not 0 <= args.port <= 65535:
        parser.error(f"--port must be from 0 to 65535, got {args.port}")
    if args.ssl_keyfile and not args.ssl_certfile:
        parser.error("--ssl-keyfile needs --ssl-certfile")
    return args


# the app ---------------------------------------------------------------------------------------


def _server_options() -> tuple[str, ...]:
    parameters = inspect.signature(Server.__init__).parameters
    return tuple(name for name in parameters if name != "self")


def import_object(spec: str, app_dir: str = ".") -> Any:
    """Import ``module:attr`` (attr defaults to ``app``) with ``app_dir`` first on ``sys.path``.

    Raises:
        UsageError: the module or attribute is missing.
    """
    module_name, _, attr = spec.partition(":")
    if not module_name:
        raise UsageError(f"app must be module:attr, got {spec!r}")
    directory = os.path.abspath(app_dir)
    if directory not in sys.path:
        sys.path.insert(0, directory)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and module_name.startswith(exc.name):
            raise UsageError(f"cannot import {module_name!r}: no such module (app dir {directory})") from None
        raise
    target: Any = module
    for part in (attr or "app").split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise UsageError(f"{module_name!r} has no attribute {attr or 'app'!r}") from None
    return target


def load_app(spec: str, app_dir: str = ".") -> dict[str, Any]:
    """Import ``module:attr`` and return the ``Server`` keyword arguments it describes.

    Raises:
        UsageError: the module or attribute is missing, or the object is not an app.
    """
    target = import_object(spec, app_dir)
    if not isinstance(target, Mapping) and not hasattr(target, "fetch") and callable(target):
        try:
            inspect.signature(target).bind()
        except TypeError:
            raise UsageError(
                f"{spec} is a callable that needs arguments: name an app (a mapping or object with fetch, "
                "websocket, ...) or a factory that takes none"
            ) from None
        except ValueError:  # no signature (a builtin): just try it
            pass
        target = target()
    return app_options(target, spec)


def app_options(app: object, name: str = "app") -> dict[str, Any]:
    """The ``Server`` keyword arguments that ``app`` (a mapping or an object) carries."""
    known = _server_options()
    if isinstance(app, Mapping):
        unknown = sorted(set(app) - set(known))
        if unknown:
            raise UsageError(f"{name}: unknown keys {unknown}; serve() takes {', '.join(known)}")
        options = dict(app)
    else:
        options = {key: getattr(app, key) for key in known if getattr(app, key, None) is not None}
    if options.get("fetch") is None and options.get("asgi") is None:
        raise UsageError(f"{name} is not an app: it needs fetch (or asgi), as a key or an attribute")
    return options


def resolve_options(args: argparse.Namespace, app: dict[str, Any]) -> dict[str, Any]:
    """The app's options with the command line's (and environment's) on top."""
    options = dict(app)
    if args.host is not None:
        options["hostname"] = args.host
    if args.port is not None:
        options["port"] = args.port
    if args.broker is not None:
        options["broker"] = args.broker
    if args.reuse_port:
        options["reuse_port"] = True
    if args.ssl_certfile:
        options["tls"] = {"certfile": args.ssl_certfile, **({"keyfile": args.ssl_keyfile} if args.ssl_keyfile else {})}
    if args.asgi is not None:
        options["asgi"] = import_object(args.asgi, args.app_dir)  # the app itself: never called as a factory
    if args.metrics_path is not None:
        options["metrics_path"] = args.metrics_path
    if args.close_timeout is not None:
        options["close_timeout"] = args.close_timeout
    return options


# one process -----------------------------------------------------------------------------------


async def serve_until_signalled(options: dict[str, Any]) -> int:
    """Run one server until SIGINT/SIGTERM (Close 1001) or, in a worker, SIGHUP (Close 1012)."""
    loop = asyncio.get_running_loop()
    server = Server(**options)
    await server.start()
    stopping = asyncio.Event()
    close_code = 1001
    supervisor = os.environ.get(SUPERVISOR_ENV)

    def on_signal(signum: int) -> None:
        nonlocal close_code
        if stopping.is_set():
            if supervisor:
                return  # the supervisor decides when to force (SIGKILL); a group-wide signal must not
            logger.warning("second signal: exiting at once")
            os._exit(1)
        if signum == signal.SIGHUP:
            close_code = RESTART_CODE
        stopping.set()

    # A supervised worker ignores SIGINT: Ctrl-C reaches the whole process group, and the supervisor
    # turns it into one SIGTERM per worker.
    signals = [signal.SIGTERM, signal.SIGHUP] if supervisor else [signal.SIGINT, signal.SIGTERM]
    if supervisor:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    for signum in signals:
        loop.add_signal_handler(signum, on_signal, signum)
    watcher: asyncio.TimerHandle | None = None
    if supervisor:

        def watch_supervisor() -> None:
            nonlocal watcher
            if os.getppid() != int(supervisor):
                logger.warning("the supervisor is gone: stopping")
                stopping.set()
                return
            watcher = loop.call_later(0.5, watch_supervisor)

        watch_supervisor()
    logger.info("pubsock listening on %s%s", server.url, f" (broker {server.broker_link.broker.url})" if server.broker_link else "")
    ready_fd = os.environ.pop(READY_FD_ENV, None)
    if ready_fd is not None:
        try:
            os.write(int(ready_fd), b"1")
            os.close(int(ready_fd))
        except OSError:
            pass
    try:
        await stopping.wait()
    finally:
        if watcher is not None:
            watcher.cancel()
        for signum in signals:
            loop.remove_signal_handler(signum)
    logger.info("stopping (websockets get Close %d)", close_code)
    if close_code != 1001:
        for ws in list(server._sockets):
            ws.close(close_code, "Service restart")
    # a second signal during the graceful stop still forces the exit
    for signum in signals:
        loop.add_signal_handler(signum, on_signal, signum)
    await server.stop(close_active=True)
    return 0


def run_worker(options: dict[str, Any]) -> int:
    """Serve in this process, on uvloop when it is installed."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on POSIX
        return asyncio.run(serve_until_signalled(options))
    return uvloop.run(serve_until_signalled(options))


# N processes -----------------------------------------------------------------------------------


@dataclass(eq=False)
class _Worker:
    slot: int
    process: asyncio.subprocess.Process
    ready: asyncio.Future[bool]
    started: float
    retired: bool = False
    watcher: asyncio.Task[None] | None = field(default=None, repr=False)


class Supervisor:
    """Start ``count`` workers running ``command``; restart those that die; stop them on a signal."""

    def __init__(self, command: list[str], count: int) -> None:
        self.command = command
        self.count = count
        self.workers: dict[int, _Worker] = {}
        self.restarts = 0
        self._stopping = asyncio.Event()
        self._forced = False
        self._failures: dict[int, int] = {}
        self._background: set[asyncio.Task[Any]] = set()

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGINT, self._on_stop_signal)
        loop.add_signal_handler(signal.SIGTERM, self._on_stop_signal)
        loop.add_signal_handler(signal.SIGHUP, self._on_restart_signal)
        try:
            for slot in range(self.count):
                self.workers[slot] = await self._spawn(slot)
            starting = asyncio.ensure_future(asyncio.gather(*(worker.ready for worker in self.workers.values())))
            interrupted = asyncio.ensure_future(self._stopping.wait())
            await asyncio.wait((starting, interrupted), return_when=asyncio.FIRST_COMPLETED)
            interrupted.cancel()
            if not starting.done():  # a signal while the workers start: stop them
                starting.cancel()
                await self._stop_all()
                return 1 if self._forced else 0
            if not all(starting.result()):
                logger.error("a worker failed to start: stopping")
                await self._stop_all()
                return 1
            logger.info("%d workers ready (pids %s)", self.count, " ".join(str(w.process.pid) for w in self.workers.values()))
            for worker in self.workers.values():
                self._watch(worker)
            await self._stopping.wait()
            await self._stop_all()
            return 1 if self._forced else 0
        finally:
            for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                loop.remove_signal_handler(signum)

    async def _spawn(self, slot: int) -> _Worker:
        loop = asyncio.get_running_loop()
        read_fd, write_fd = os.pipe()
        env = dict(os.environ, **{SUPERVISOR_ENV: str(os.getpid()), READY_FD_ENV: str(write_fd)})
        try:
            process = await asyncio.create_subprocess_exec(*self.command, env=env, pass_fds=(write_fd,))
        except BaseException:
            os.close(read_fd)
            raise
        finally:
            os.close(write_fd)
        ready: asyncio.Future[bool] = loop.create_future()
        worker = _Worker(slot, process, ready, loop.time())
        self._start(self._wait_ready(worker, read_fd))
        logger.info("worker %d started (pid %d)", slot, process.pid)
        return worker

    async def _wait_ready(self, worker: _Worker, read_fd: int) -> None:
        """Resolve ``worker.ready``: True once it wrote its byte, False if it exited or timed out first."""
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(read_fd, "rb"))
        try:
            data = await asyncio.wait_for(reader.read(1), WORKER_START_TIMEOUT)
        except asyncio.TimeoutError:
            data = b""
            logger.error("worker %d (pid %d) did not start listening within %.0f s", worker.slot, worker.process.pid, WORKER_START_TIMEOUT)
        finally:
            transport.close()
        if not worker.ready.done():
            worker.ready.set_result(bool(data))

    def _start(self, coroutine: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    def _watch(self, worker: _Worker) -> None:
        worker.watcher = self._start(self._keep(worker))

    async def _keep(self, worker: _Worker) -> None:
        """Restart ``worker``'s slot when its process ends, unless it was retired or we are stopping."""
        loop = asyncio.get_running_loop()
        code = await worker.process.wait()
        if worker.retired or self._stopping.is_set():
            return
        lived = loop.time() - worker.started
        failures = self._failures.get(worker.slot, 0) + 1 if lived < 2.0 else 0
        self._failures[worker.slot] = failures
        delay = min(MAX_RESTART_DELAY, 0.1 * 2 ** (failures - 1)) if failures else 0.0
        logger.warning(
            "worker %d (pid %d) exited with %s after %.1f s: restarting%s",
            worker.slot,
            worker.process.pid,
            _exit_text(code),
            lived,
            f" in {delay:.1f} s" if delay else "",
        )
        if delay:
            try:
                await asyncio.wait_for(self._stopping.wait(), delay)
                return
            except asyncio.TimeoutError:
                pass
        if self._stopping.is_set():
            return
        replacement = await self._spawn(worker.slot)
        self.workers[worker.slot] = replacement
        self.restarts += 1
        self._watch(replacement)

    async def _rolling_restart(self) -> None:
        """Replace each worker in turn: the new one listens before the old one closes (1012) and exits."""
        logger.info("SIGHUP: restarting the workers one at a time")
        for slot in range(self.count):
            if self._stopping.is_set():
                return
            old = self.workers[slot]
            new = await self._spawn(slot)
            if not await new.ready:
                logger.error("replacement for worker %d failed to start; keeping pid %d", slot, old.process.pid)
                new.retired = True
                _signal(new.process, signal.SIGKILL)
                continue
            old.retired = True
            self.workers[slot] = new
            self._watch(new)
            _signal(old.process, signal.SIGHUP)
            await old.process.wait()

    def _on_stop_signal(self) -> None:
        if self._stopping.is_set():
            logger.warning("second signal: killing the workers")
            self._forced = True
            for worker in self.workers.values():
                _signal(worker.process, signal.SIGKILL)
            return
        logger.info("stopping %d workers", len(self.workers))
        self._stopping.set()

    def _on_restart_signal(self) -> None:
        if not self._stopping.is_set():
            self._start(self._rolling_restart())

    async def _stop_all(self) -> None:
        self._stopping.set()
        processes = [worker.process for worker in self.workers.values()]
        for process in processes:
            _signal(process, signal.SIGTERM)
        waiting = [asyncio.ensure_future(process.wait()) for process in processes]
        if waiting:
            done, pending = await asyncio.wait(waiting, timeout=WORKER_STOP_TIMEOUT)
            if pending:
                logger.warning("%d workers did not stop within %.0f s: killing them", len(pending), WORKER_STOP_TIMEOUT)
                for process in processes:
                    _signal(process, signal.SIGKILL)
                await asyncio.wait(pending)
        for task in list(self._background):
            task.cancel()
        logger.info("all workers stopped")


def _signal(process: asyncio.subprocess.Process, signum: int) -> None:
    if process.returncode is None:
        try:
            process.send_signal(signum)
        except ProcessLookupError:
            pass


def _exit_text(code: int) -> str:
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"status {code}"


def worker_command(args: argparse.Namespace, options: dict[str, Any]) -> list[str]:
    """The command line of one worker: this one, resolved, with one process and SO_REUSEPORT."""
    command = [sys.executable, "-m", "pubsock", *([args.app] if args.app else []), "--workers", "1", "--reuse-port"]
    command += ["--host", str(options.get("hostname", "127.0.0.1")), "--port", str(options.get("port", 3000))]
    command += ["--log-level", args.log_level, "--app-dir", os.path.abspath(args.app_dir)]
    if isinstance(options.get("broker"), str):
        command += ["--broker", options["broker"]]
    if args.ssl_certfile:
        command += ["--ssl-certfile", args.ssl_certfile]
    if args.ssl_keyfile:
        command += ["--ssl-keyfile", args.ssl_keyfile]
    for flag, value in (("--asgi", args.asgi), ("--metrics-path", args.metrics_path), ("--close-timeout", args.close_timeout)):
        if value is not None:
            command += [flag, str(value)]
    return command


# entry point -----------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """The ``pubsock`` command. Returns the exit status."""
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format=LOG_FORMAT)
    try:
        options = resolve_options(args, load_app(args.app, args.app_dir) if args.app else {})
        if args.workers > 1:
            if options.get("broker") is None:
                raise UsageError(
                    f"--workers {args.workers} needs --broker (or PUBSOCK_BROKER): without a broker each worker "
                    "has its own topics, and a publish would silently reach only the subscribers in its own process"
                )
            broker = options["broker"]
            if (isinstance(broker, str) and broker.lower().startswith("local:")) or type(broker).__name__ == "LocalBroker":
                raise UsageError(f"--workers {args.workers} needs a broker between processes: local:// lives in one process")
            if not options.get("port"):
                raise UsageError("--workers needs a fixed --port: with port 0 each worker would pick another one")
        try:  # check the options (and a broker URL) before starting anything
            Server(**{**options, "broker": None})
            if isinstance(options.get("broker"), str):
                resolve_broker(options["broker"])
        except (TypeError, ValueError, ImportError) as exc:
            raise UsageError(str(exc)) from None
    except UsageError as exc:
        print(f"pubsock: error: {exc}", file=sys.stderr)
        return 2
    if args.workers > 1:
        return asyncio.run(Supervisor(worker_command(args, options), args.workers).run())
    return run_worker(options)
