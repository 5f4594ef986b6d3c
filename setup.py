"""Build the compiled hot path: each ``_NAME_py.py`` source is compiled by Cython as ``_NAME_c``.

The compiled module needs its own name (as aiohttp does) so that the pure source
stays importable; the build copies the source beside its ``.pxd`` under that name.
Without Cython or a C compiler, or with PUBSOCK_NO_EXTENSIONS=1 set at build
time, the package installs as pure Python.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_ext import build_ext

COMPILED_MODULES = ["pubsock.protocol._frames", "pubsock.server._topics"]


def extensions() -> list:
    if os.environ.get("PUBSOCK_NO_EXTENSIONS"):
        return []
    try:
        from Cython.Build import cythonize
        from setuptools import Extension
    except ImportError:
        return []
    exts = []
    for dotted in COMPILED_MODULES:
        base = Path("src", *dotted.split("."))
        source, target = base.with_name(base.name + "_py.py"), base.with_name(base.name + "_c.py")
        if not source.exists():
            continue
        shutil.copyfile(source, target)
        exts.append(Extension(dotted + "_c", [str(target)]))
    return cythonize(exts, language_level=3, compiler_directives={"boundscheck": False, "wraparound": False, "annotation_typing": False})


class OptionalBuildExt(build_ext):
    """Fall back to pure Python when the C build fails."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # noqa: BLE001 - any build failure means "install pure Python"
            print(f"pubsock: building the extensions failed ({exc}); installing pure Python")

    def build_extension(self, ext) -> None:  # type: ignore[no-untyped-def]
        try:
            super().build_extension(ext)
        except Exception as exc:  # noqa: BLE001
            print(f"pubsock: building {ext.name} failed ({exc}); it will run as pure Python")


setup(ext_modules=extensions(), cmdclass={"build_ext": OptionalBuildExt})
