"""Build the Cython core in kvdb/_core/.

KVDB_PROFILE=1 builds with line tracing (for coverage and line profilers) and
writes Cython's annotated HTML next to each .pyx.
"""
import glob
import os

from Cython.Build import cythonize
from setuptools import Extension, setup

PROFILE = os.environ.get("KVDB_PROFILE") == "1"

# Every .pyx under kvdb/ is one extension module named after its path (.pxi files are
# included, not built alone): the engine in kvdb/_core/ and the server's hot path.
# KVDB_BUILD_ONLY=GLOB (for example "kvdb/server/protocol/*.pyx") builds just those modules.
SOURCES = sorted(glob.glob(os.environ.get("KVDB_BUILD_ONLY") or "kvdb/**/*.pyx", recursive=True))

macros = [("CYTHON_TRACE_NOGIL", "1")] if PROFILE else []
extensions = [
    Extension(
        path[:-4].replace("/", "."),
        [path],
        include_dirs=["kvdb/_core"],
        extra_compile_args=["-O2", "-fno-strict-aliasing"],
        define_macros=macros,
    )
    for path in SOURCES
]

setup(
    ext_modules=cythonize(
        extensions,
        language_level=3,
        annotate=PROFILE,
        compiler_directives={
            "embedsignature": True,
            "linetrace": PROFILE,
        },
    ),
)
