"""Builds the Cython codec, connection and connection glue; all other metadata lives in pyproject.toml."""

import os

from Cython.Build import cythonize
from setuptools import Extension, setup

extra_compile_args = ["-O3"]
if os.environ.get("FASTWS_NATIVE") == "1":  # tune for this CPU; not for wheels that travel
    extra_compile_args.append("-march=native")

extensions = [
    Extension("fastws._codec", ["fastws/_codec.pyx"], extra_compile_args=extra_compile_args),
    Extension(
        "fastws._connection", ["fastws/_connection.pyx"], extra_compile_args=extra_compile_args
    ),
    Extension("fastws._protocol", ["fastws/_protocol.pyx"], extra_compile_args=extra_compile_args),
]

setup(
    ext_modules=cythonize(
        extensions,
        language_level=3,
        compiler_directives={
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": False,
        },
    ),
)
