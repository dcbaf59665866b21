"""The Dockerfile build engine: stage graph, per-instruction dispatch, COPY/ADD, build cache, image config.

Builder(store, BuildOptions(context=..., tags=(...)), reporter=...).build() -> BuildResult
"""

from idpbuilder.builder.builder import Builder
from idpbuilder.builder.options import BuildOptions, BuildResult, default_dockerfile
from idpbuilder.builder.progress import NullReporter, StepInfo, StepReporter

__all__ = [
    "BuildOptions",
    "BuildResult",
    "Builder",
    "NullReporter",
    "StepInfo",
    "StepReporter",
    "default_dockerfile",
]
