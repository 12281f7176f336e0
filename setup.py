"""Build the compiled modules: oomd._fastcg, the reader's face, and the modules of oomd/_reader
that it cimports (see docs/design.md, "Reading"; pyproject.toml holds the metadata).

Set PYOOMD_ANNOTATE=1 to get Cython's HTML annotation next to each .pyx, and
PYOOMD_DEBUG=1 to build without optimisation and with bounds checks.
"""

import os

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

DEBUG = bool(os.environ.get("PYOOMD_DEBUG"))

directives = {
    "language_level": "3",
    "boundscheck": DEBUG,
    "wraparound": False,
    "cdivision": True,
    "initializedcheck": DEBUG,
    "embedsignature": True,
}

# Every compiled module: the face first, then oomd/_reader/<name>.pyx, then the recordings'
# tick encoder loop.
MODULES = ["oomd._fastcg"] + [f"oomd._reader.{name}" for name in (
    "baseline", "derived", "listing", "load", "problems", "sysfiles", "table", "watch",
)] + ["oomd.record._delta"]

extensions = [
    Extension(
        name,
        [name.replace(".", "/") + ".pyx"],
        include_dirs=[np.get_include()],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION"), ("_GNU_SOURCE", "1")],
        # no fused multiply-add: float32 scores must round as numpy's (oomd's) do
        extra_compile_args=(["-O0", "-g"] if DEBUG else ["-O2"]) + ["-ffp-contract=off"],
    )
    for name in MODULES
]

setup(
    ext_modules=cythonize(
        extensions,
        compiler_directives=directives,
        annotate=bool(os.environ.get("PYOOMD_ANNOTATE")),
    )
)
