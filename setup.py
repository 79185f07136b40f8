"""Build the optional C core (pcapmtu.ingest._native); everything else is declared in pyproject.toml.

`optional=True`: where no C compiler is available the install still succeeds and pcapmtu runs its pure
numpy path, with the same results, only slower (docs/performance.md).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "pcapmtu.ingest._native",
            sources=["analyzer/pcapmtu/ingest/_native.c"],
            extra_compile_args=["-O2"],
            optional=True,
        )
    ]
)
