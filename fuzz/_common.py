"""Shared pieces of the fuzz harnesses: input decoding and the atheris entry point.

Each harness is a module with ``test_one_input(data: bytes) -> None`` that raises
on a finding. The harness decodes its input with `Input` (not atheris'
FuzzedDataProvider), so the crashers in ``fuzz/crashers/`` replay in plain pytest
without atheris (``tests/fuzz_regressions``).

Run a harness as a script: ``python fuzz/fuzz_frames.py [-max_total_time=N] [libFuzzer flags]``;
it fuzzes from ``fuzz/corpus/<name>/`` (new inputs go to a scratch copy, not to
the committed seeds) and writes crashers as ``fuzz/crashers/<name>-crash-<sha1>``.
Without atheris it falls back to a plain random-mutation loop with the same
harness (``-max_total_time`` and ``-runs`` are honoured).
"""

from __future__ import annotations

import contextlib
import hashlib
import random
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path

FUZZ_DIR = Path(__file__).resolve().parent
CORPUS_DIR = FUZZ_DIR / "corpus"
CRASHERS_DIR = FUZZ_DIR / "crashers"

try:
    import atheris
except ImportError:  # pragma: no cover - the fallback loop below
    atheris = None


class Input:
    """Reads a fuzz input as a few small decisions followed by raw bytes; never fails when short."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def byte(self) -> int:
        if self.pos >= len(self.data):
            return 0
        value = self.data[self.pos]
        self.pos += 1
        return value

    def uint(self, nbytes: int) -> int:
        value = 0
        for _ in range(nbytes):
            value = (value << 8) | self.byte()
        return value

    def take(self, n: int) -> bytes:
        chunk = self.data[self.pos : self.pos + n]
        self.pos += len(chunk)
        return chunk

    def rest(self) -> bytes:
        chunk = self.data[self.pos :]
        self.pos = len(self.data)
        return chunk

    @property
    def remaining(self) -> int:
        return len(self.data) - self.pos


def chunks(data: bytes, seed: int) -> list[bytes]:
    """Split ``data`` into pieces whose sizes follow from ``seed`` (0: one piece)."""
    if seed == 0 or not data:
        return [data]
    rng = random.Random(seed)
    top = max(1, seed)
    pieces = []
    pos = 0
    while pos < len(data):
        size = rng.randint(1, top)
        pieces.append(data[pos : pos + size])
        pos += size
    return pieces


@contextlib.contextmanager
def instrumented(enabled: bool) -> Iterator[None]:
    """Instrument pubsock for coverage while importing it, when running under atheris."""
    if enabled and atheris is not None:
        with atheris.instrument_imports(include=["pubsock"]):
            yield
    else:
        yield


def main(name: str, test_one_input: Callable[[bytes], None]) -> None:
    """Fuzz ``test_one_input`` from the corpus ``fuzz/corpus/<name>/``; libFuzzer flags in argv."""
    CRASHERS_DIR.mkdir(exist_ok=True)
    seeds = CORPUS_DIR / name
    work = Path(tempfile.mkdtemp(prefix=f"pubsock-fuzz-{name}-"))
    try:
        for seed in seeds.iterdir():
            shutil.copy(seed, work / seed.name)
        args = [sys.argv[0], *sys.argv[1:]]
        if not any(arg.startswith("-artifact_prefix=") for arg in args):
            args.append(f"-artifact_prefix={CRASHERS_DIR}/{name}-")
        if not any(arg.startswith("-max_len=") for arg in args):
            args.append("-max_len=8192")
        if not any(arg.startswith("-timeout=") for arg in args):
            args.append("-timeout=20")  # a slow input is a finding too (a hang, a quadratic path)
        args.append(str(work))
        if atheris is not None:
            atheris.Setup(args, test_one_input)
            atheris.Fuzz()
        else:
            _random_loop(name, test_one_input, work, args)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _flag(args: list[str], name: str, default: int) -> int:
    for arg in args:
        if arg.startswith(f"-{name}="):
            return int(arg.split("=", 1)[1])
    return default


def _random_loop(name: str, test_one_input: Callable[[bytes], None], work: Path, args: list[str]) -> None:
    """The fallback without atheris: mutate corpus entries at random (no coverage feedback)."""
    print(f"atheris is not installed: random mutation fuzzing of {name}", file=sys.stderr)
    max_time = _flag(args, "max_total_time", 0)
    max_runs = _flag(args, "runs", -1)
    max_len = _flag(args, "max_len", 8192)
    corpus = [path.read_bytes() for path in sorted(work.iterdir())] or [b""]
    rng = random.Random(_flag(args, "seed", 0) or None)
    start = time.monotonic()
    runs = 0
    while (max_runs < 0 or runs < max_runs) and (not max_time or time.monotonic() - start < max_time):
        data = bytearray(rng.choice(corpus))
        for _ in range(rng.randint(1, 8)):
            op = rng.randrange(5)
            pos = rng.randrange(len(data) + 1)
            if op == 0 and data:
                data[min(pos, len(data) - 1)] = rng.randrange(256)
            elif op == 1:
                data[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
            elif op == 2 and data:
                del data[pos : pos + rng.randint(1, 8)]
            elif op == 3:
                other = rng.choice(corpus)
                data[pos:pos] = other[: rng.randint(0, len(other))]
            elif op == 4 and data:
                data[min(pos, len(data) - 1)] ^= 1 << rng.randrange(8)
        data = bytes(data[:max_len])
        runs += 1
        try:
            test_one_input(data)
        except Exception:
            digest = hashlib.sha1(data).hexdigest()
            path = CRASHERS_DIR / f"{name}-crash-{digest}"
            path.write_bytes(data)
            traceback.print_exc()
            print(f"crash written to {path} after {runs} runs", file=sys.stderr)
            sys.exit(1)
    print(f"Done {runs} runs in {int(time.monotonic() - start)} second(s)", file=sys.stderr)


def load(name: str) -> list[Path]:
    """The committed crashers of harness ``name`` (for the regression tests)."""
    if not CRASHERS_DIR.is_dir():
        return []
    return sorted(path for path in CRASHERS_DIR.iterdir() if path.name.startswith(f"{name}-"))
