"""Errors the CLI reports as one line, and the one table of exit codes every command follows."""

from __future__ import annotations

EXIT_OK = 0
EXIT_REJECTED = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
EXIT_UNREACHABLE = 4
EXIT_INTERRUPTED = 130

EXIT_CODES = {
    EXIT_OK: "success: listed, shown, registered, valid, uploaded, started, approved, or a rollout running or promoted",
    EXIT_REJECTED: "refused or rejected: the version was rejected, a local manifest is invalid, an action was "
    "refused, or a rollout ended without promoting",
    EXIT_USAGE: "usage error: a bad argument, a malformed service or version name, an invalid override, or a "
    "config file that is missing or invalid (found before any AWS call)",
    EXIT_NOT_FOUND: "not found: an unknown service, version, manifest or rollout",
    EXIT_UNREACHABLE: "unreachable: an AWS error or a missing SSM parameter, or an upload's registration not "
    "seen in time",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C)",
}


class CliError(Exception):
    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
