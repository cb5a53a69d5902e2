"""Progress of an upload on stderr: bars in a terminal, one line per event anywhere else (CI logs, pipes), so
that a long upload is never silent and stdout keeps only the result."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, TextIO


class UploadProgress:
    def __init__(self, *, total_bytes: int, stream: TextIO | None = None) -> None:
        self._stream = stream or sys.stderr
        self._bars = self._stream.isatty()
        self._total = total_bytes
        self._overall: Any = None
        if self._bars:
            from tqdm import tqdm  # only a terminal draws bars

            self._overall = tqdm(total=total_bytes, unit="B", unit_scale=True, desc="all files", file=self._stream)

    def line(self, text: str) -> None:
        if self._overall is not None:
            self._overall.write(text, file=self._stream)
        else:
            print(text, file=self._stream, flush=True)

    def file(self, path: str, size: int) -> Callable[[int], None]:
        """The callback an upload calls with each chunk sent: it moves the bar, or (outside a terminal, where a line
        says the file started and another that it finished) does nothing."""
        if self._overall is not None:
            return self._overall.update
        self.line(f"uploading {path} ({size} bytes)")
        return lambda _: None

    def skipped(self, path: str, size: int) -> None:
        if self._overall is not None:
            self._overall.update(size)
        self.line(f"{path}: already uploaded with the same checksum, not sent again")

    def close(self) -> None:
        if self._overall is not None:
            self._overall.close()
