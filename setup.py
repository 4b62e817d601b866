"""Build the Cython core in kvdb/_core/.

KVDB_PROFILE=1 builds with line tracing (for coverage and line profilers) and
writes Cython's annotated HTML next to each .pyx.
"""
import glob
import os

from Cython.Build import cythonize
from setuptools import Extension, setup

PROFILE = os.environ.get("KVDB_PROFILE") == "1"

# Every kvdb/_core/*.pyx is one extension module (.pxi files are included, not built alone).
MODULES = sorted(os.path.basename(p)[:-4] for p in glob.glob("kvdb/_core/*.pyx"))

macros = [("CYTHON_TRACE_NOGIL", "1")] if PROFILE else []
extensions = [
    Extension(
        f"kvdb._core.{name}",
        [f"kvdb/_core/{name}.pyx"],
        include_dirs=["kvdb/_core"],
        extra_compile_args=["-O2", "-fno-strict-aliasing"],
        define_macros=macros,
    )
    for name in MODULES
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
