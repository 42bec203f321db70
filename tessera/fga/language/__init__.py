"""OpenFGA's modeling language: DSL <-> JSON, validation, modules (fga.mod) and store test files."""

from __future__ import annotations

from .api import (
    transform_dsl_to_json,
    transform_json_to_dsl,
    transform_module_files,
    validate_dsl,
    validate_json_model,
)
from .errors import (
    DSLSyntaxError,
    ErrorDetail,
    LanguageError,
    ModelValidationError,
    ModuleError,
    StoreFileError,
)
from .store_file import (
    CheckAssertion,
    ListObjectsAssertion,
    ListUsersAssertion,
    StoreFile,
    StoreTest,
    TupleSpec,
    load_store_file,
)

__all__ = [
    "CheckAssertion",
    "DSLSyntaxError",
    "ErrorDetail",
    "LanguageError",
    "ListObjectsAssertion",
    "ListUsersAssertion",
    "ModelValidationError",
    "ModuleError",
    "StoreFile",
    "StoreFileError",
    "StoreTest",
    "TupleSpec",
    "load_store_file",
    "transform_dsl_to_json",
    "transform_json_to_dsl",
    "transform_module_files",
    "validate_dsl",
    "validate_json_model",
]
