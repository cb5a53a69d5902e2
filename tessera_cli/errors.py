"""Errors the CLI reports as one line and an exit code that scripts can rely on."""

from __future__ import annotations

EXIT_OK = 0
EXIT_REJECTED = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
EXIT_UNREACHABLE = 4

EXIT_CODES = {
    EXIT_OK: "success (listed, shown, registered, valid, uploaded)",
    EXIT_REJECTED: "the version was rejected, the local manifest is invalid, or the action was refused",
    EXIT_USAGE: "usage error: bad arguments, a malformed service or version name (checked before any AWS call)",
    EXIT_NOT_FOUND: "not found: unknown service, version, manifest or rollout",
    EXIT_UNREACHABLE: "the environment could not be reached (AWS error, missing SSM parameter, broken config), "
    "or an upload's registration was not seen in time",
}


class CliError(Exception):
    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
