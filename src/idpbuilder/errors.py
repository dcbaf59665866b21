"""One exception tree for the whole tool.

    IdpError                      exit 1 unless stated; .message (what failed) and .hint (how to fix)
    ├── UsageError                bad user input (flags, references, --target)       exit 2
    │   └── ConfigError           a configuration file is invalid (docker config)      exit 1
    ├── NotFoundError             image / Dockerfile / context / registry object     exit 2
    ├── StoreError                local store corrupt or unusable
    │   └── DigestMismatchError   bytes did not match their digest or size
    ├── RegistryError             a registry answered with an error
    │   ├── AuthError             401 / 403, never retried
    │   ├── TLSError              certificate verification failed
    │   └── TransientError        connection error, timeout, 408/429/5xx (retried)
    ├── BuildError                a build step failed
    │   ├── DockerfileParseError  syntax error: carries file and line
    │   └── RunFailedError        RUN exited non-zero: carries exit code and output tail
    ├── ClusterError              the Kubernetes cluster could not be read
    └── Interrupted               Ctrl-C / SIGTERM                                    exit 130

Only ``cli/`` turns these into output and exit codes.
"""

from __future__ import annotations

__all__ = [
    "AuthError",
    "BuildError",
    "ClusterError",
    "ConfigError",
    "DigestMismatchError",
    "DockerfileParseError",
    "IdpError",
    "Interrupted",
    "NotFoundError",
    "RegistryError",
    "RunFailedError",
    "StoreError",
    "TLSError",
    "TransientError",
    "UsageError",
]


class IdpError(Exception):
    """Base error: a one-line message saying what failed and an optional hint saying how to fix it."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class UsageError(IdpError):
    """The user's input (a flag, a reference, an argument) is invalid: exit 2, like click's own usage errors."""

    exit_code = 2


class ConfigError(UsageError):
    """A configuration file (e.g. the docker config) is invalid: the user's input, but not the command line."""

    exit_code = 1


class NotFoundError(IdpError):
    """An image, tag, Dockerfile, context or registry object does not exist."""

    exit_code = 2


class StoreError(IdpError):
    """The local image store is unusable."""


class DigestMismatchError(StoreError):
    """Content did not match its expected digest or size."""


class RegistryError(IdpError):
    """A registry request failed."""

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        status: int | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.status = status
        self.code = code


class AuthError(RegistryError):
    """Authentication or authorization failed (401/403); never retried."""


class TLSError(RegistryError):
    """The registry's certificate could not be verified."""


class TransientError(RegistryError):
    """A failure worth retrying: connection error, timeout, 408, 429, 5xx."""


class BuildError(IdpError):
    """A build failed."""


class DockerfileParseError(BuildError):
    """The Dockerfile has a syntax error."""

    def __init__(
        self, message: str, *, file: str = "Dockerfile", line: int | None = None, hint: str | None = None
    ) -> None:
        where = f"{file}:{line}" if line is not None else file
        super().__init__(f"{where}: {message}", hint=hint)
        self.file = file
        self.line = line


class RunFailedError(BuildError):
    """A RUN step exited non-zero."""

    def __init__(
        self, message: str, *, exit_status: int, output_tail: str = "", hint: str | None = None
    ) -> None:
        super().__init__(message, hint=hint)
        self.exit_status = exit_status
        self.output_tail = output_tail


class ClusterError(IdpError):
    """The idpbuilder Kubernetes cluster could not be read."""


class Interrupted(IdpError):
    """The user interrupted the command (Ctrl-C / SIGTERM)."""

    exit_code = 130
