"""Build the one compiled module, oomd._fastcg (see pyproject.toml for metadata).

Set PYOOMD_ANNOTATE=1 to get Cython's HTML annotation next to the .pyx, and
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

extensions = [
    Extension(
        "oomd._fastcg",
        ["oomd/_fastcg.pyx"],
        include_dirs=[np.get_include()],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION"), ("_GNU_SOURCE", "1")],
        extra_compile_args=["-O0", "-g"] if DEBUG else ["-O2"],
    )
]

setup(
    ext_modules=cythonize(
        extensions,
        compiler_directives=directives,
        annotate=bool(os.environ.get("PYOOMD_ANNOTATE")),
    )
)
