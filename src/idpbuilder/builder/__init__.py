"""The Dockerfile build engine: stage graph, per-instruction dispatch, COPY/ADD, build cache, image config.

Builder(store, BuildOptions(context=..., tags=(...)), reporter=...).build() -> BuildResult
"""

from idpbuilder.builder.builder import Builder, BuildOptions, BuildResult, NullReporter, Reporter, StepInfo

__all__ = ["BuildOptions", "BuildResult", "Builder", "NullReporter", "Reporter", "StepInfo"]
