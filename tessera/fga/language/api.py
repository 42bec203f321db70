"""The public entry points (re-exported by :mod:`tessera.fga.language`)."""

from __future__ import annotations

from typing import Any

from .ast import Positions
from .parser import parse_dsl
from .transformer import json_to_dsl, model_json


def parse_dsl_to_json(dsl: str) -> tuple[dict[str, Any], Positions]:
    """DSL to JSON without semantic validation (syntax errors still raise)."""
    positions = Positions()
    return model_json(parse_dsl(dsl), positions), positions


def transform_dsl_to_json(dsl: str, *, validate: bool = True) -> dict[str, Any]:
    model, positions = parse_dsl_to_json(dsl)
    if validate:
        from .validation import validate_model

        validate_model(model, positions)
    return model


def validate_dsl(dsl: str) -> None:
    transform_dsl_to_json(dsl, validate=True)


def transform_json_to_dsl(model: dict[str, Any], *, include_source_information: bool = False) -> str:
    """OpenFGA's JSON model to DSL text; raises :class:`ModelValidationError` for a model the DSL cannot
    write (OpenFGA's "... is not supported by the OpenFGA DSL syntax yet") or that is not shaped as one."""
    from .errors import ModelValidationError
    from .validation import shape_errors

    problems = shape_errors(model)
    if problems:
        raise ModelValidationError(problems)
    return json_to_dsl(model, include_source_information=include_source_information)


def validate_json_model(model: dict[str, Any], *, strict: bool = True) -> None:
    """Validate a JSON model as OpenFGA does; raises :class:`ModelValidationError` (messages without
    positions). See :func:`tessera.fga.language.validation.validate_model` for ``strict``."""
    from .validation import validate_model

    validate_model(model, None, strict=strict)


def transform_module_files(fga_mod: str, files: dict[str, str]) -> dict[str, Any]:
    from .modules import transform_module_files as _impl

    return _impl(fga_mod, files)
