"""Errors raised by the model language.

Every error carries a list of :class:`ErrorDetail` in ``errors``; each detail has OpenFGA's message and, when
the input was DSL, the 0-based line and column range of the offending text (the shape OpenFGA's language tests
use: ``line: {start, end}``, ``column: {start, end}``, ``metadata: {symbol, errorType}``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tessera.core.errors import ValidationFailed


@dataclass
class ErrorDetail:
    msg: str
    line: tuple[int, int] | None = None
    column: tuple[int, int] | None = None
    symbol: str | None = None
    error_type: str | None = None
    file: str | None = None
    kind: str | None = None  # "syntax" for parser errors in module files, as OpenFGA marks them

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"msg": self.msg}
        if self.file is not None:
            out["file"] = self.file
        if self.line is not None:
            out["line"] = {"start": self.line[0], "end": self.line[1]}
        if self.column is not None:
            out["column"] = {"start": self.column[0], "end": self.column[1]}
        metadata: dict[str, Any] = {}
        if self.symbol is not None:
            metadata["symbol"] = self.symbol
        if self.error_type is not None:
            metadata["errorType"] = self.error_type
        if metadata:
            out["metadata"] = metadata
        if self.kind is not None:
            out["type"] = self.kind
        return out

    def __str__(self) -> str:
        where = ""
        if self.line is not None and self.column is not None:
            # 1-based for people (the structured fields stay 0-based, as OpenFGA's are).
            where = f" (line {self.line[0] + 1}, column {self.column[0] + 1})"
        prefix = f"{self.file}: " if self.file else ""
        return f"{prefix}{self.msg}{where}"


class LanguageError(ValidationFailed):
    """Base class of the model language's errors; ``errors`` lists every problem found."""

    code = "validation_error"
    label = "invalid model"

    def __init__(self, errors: list[ErrorDetail]):
        self.errors = list(errors)
        count = len(self.errors)
        summary = "; ".join(str(e) for e in self.errors[:5])
        if count > 5:
            summary += f"; and {count - 5} more"
        super().__init__(f"{self.label}: {count} error{'s' if count != 1 else ''}: {summary}")


class DSLSyntaxError(LanguageError):
    """The DSL text does not parse (OpenFGA's ANTLR-style messages)."""

    label = "syntax error"


class ModelValidationError(LanguageError):
    """The model parses but breaks one of OpenFGA's semantic rules."""

    label = "invalid authorization model"


class ModuleError(LanguageError):
    """A modular model (fga.mod and its files) cannot be combined."""

    label = "invalid modular model"


class StoreFileError(LanguageError):
    """A store test file (store.fga.yaml) does not follow the fga CLI's schema.

    ``schema_errors`` holds the errors in the shape the fga CLI's JSON-schema validator reports them
    (``keyword``, ``message``, ``instancePath``, ``schemaPath``, ``params``).
    """

    label = "invalid store file"

    def __init__(self, errors: list[ErrorDetail], schema_errors: list[dict[str, Any]] | None = None):
        self.schema_errors = list(schema_errors or [])
        super().__init__(errors)
