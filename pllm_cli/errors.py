"""The one error type for expected failures and the exit codes documented in docs/exit-codes.md."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    INTERNAL = 1  # a bug: a traceback is printed
    USAGE = 2  # bad command-line usage (unknown option, missing argument)
    PARTIAL = 3  # ingest: some files failed, all the others were ingested
    INPUT = 4  # bad input: unreadable, empty, binary or malformed file or question
    NOT_FOUND = 5  # nothing to work on: empty memory, unknown source, no profile yet
    MODEL = 6  # the chat or embedding model is missing, corrupt or cannot be loaded
    TOO_LONG = 7  # the question does not fit in the model's context window
    CONFIG = 8  # invalid configuration value or file
    STORE = 9  # the memory store is unusable (corrupt, or built with another embedding model)
    BUSY = 10  # another pllm process holds the lock
    SERVER_BUSY = 11  # the pllm server's queue is full (or it is stopping): try again, or --no-server
    UNREACHABLE = 12  # the memory server (memory_url) or model server (model_url) does not answer, or refuses pllm
    INTERRUPTED = 130  # Ctrl-C


class PllmError(Exception):
    """An expected failure: shown as one line `Error: message` plus a hint, never as a traceback."""

    exit_code: ExitCode = ExitCode.INPUT

    def __init__(self, message: str, hint: str | None = None, exit_code: ExitCode | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        if exit_code is not None:
            self.exit_code = exit_code


class UsageError(PllmError):
    """A bad command line the parser could not catch: an option value outside its choices, an unusable --home."""

    exit_code = ExitCode.USAGE


class InputError(PllmError):
    exit_code = ExitCode.INPUT


class NotAnExportError(InputError):
    """A .json or .zip file that is not a chat export pllm knows: skipped, not failed, in a folder walk."""


class NotFoundError(PllmError):
    exit_code = ExitCode.NOT_FOUND


class ModelError(PllmError):
    exit_code = ExitCode.MODEL


class TooLongError(PllmError):
    exit_code = ExitCode.TOO_LONG


class ConfigError(PllmError):
    exit_code = ExitCode.CONFIG


class StoreError(PllmError):
    exit_code = ExitCode.STORE


class UnreachableError(PllmError):
    exit_code = ExitCode.UNREACHABLE


class BusyError(PllmError):
    exit_code = ExitCode.BUSY


class ServerBusyError(PllmError):
    exit_code = ExitCode.SERVER_BUSY
