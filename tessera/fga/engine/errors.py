"""OpenFGA's error codes (openfga/api ``openfga/v1/errors_ledger``: ``ErrorCode``, ``InternalErrorCode``,
``NotFoundErrorCode``), so the HTTP layer can answer exactly what OpenFGA's clients expect.

Every engine error is an :class:`FGAError` carrying the numeric code, its name and the HTTP status the
``/fga`` API maps it to. Bad input never changes state: operations validate everything before writing.
"""

from __future__ import annotations

from enum import IntEnum

from tessera.core.errors import TesseraError


class ErrorCode(IntEnum):
    # openfga.v1.ErrorCode (HTTP 400)
    validation_error = 2000
    authorization_model_not_found = 2001
    authorization_model_resolution_too_complex = 2002
    invalid_write_input = 2003
    cannot_allow_duplicate_tuples_in_one_request = 2004
    cannot_allow_duplicate_types_in_one_request = 2005
    cannot_allow_multiple_references_to_one_relation = 2006
    invalid_continuation_token = 2007
    invalid_tuple_set = 2008
    invalid_check_input = 2009
    invalid_expand_input = 2010
    unsupported_user_set = 2011
    invalid_object_format = 2012
    write_failed_due_to_invalid_input = 2017
    authorization_model_assertions_not_found = 2018
    latest_authorization_model_not_found = 2020
    type_not_found = 2021
    relation_not_found = 2022
    empty_relation_definition = 2023
    invalid_user = 2025
    invalid_tuple = 2027
    unknown_relation = 2028
    store_id_invalid_length = 2030
    assertions_too_many_items = 2033
    id_too_long = 2034
    authorization_model_id_too_long = 2036
    tuple_key_value_not_specified = 2037
    tuple_keys_too_many_or_too_few_items = 2038
    page_size_invalid = 2039
    param_missing_value = 2040
    difference_base_missing_value = 2041
    subtract_base_missing_value = 2042
    object_too_long = 2043
    relation_too_long = 2044
    type_definitions_too_few_items = 2045
    type_invalid_length = 2046
    type_invalid_pattern = 2047
    relations_too_few_items = 2048
    relations_too_long = 2049
    relations_invalid_pattern = 2050
    object_invalid_pattern = 2051
    query_string_type_continuation_token_mismatch = 2052
    exceeded_entity_limit = 2053
    invalid_contextual_tuple = 2054
    duplicate_contextual_tuple = 2055
    invalid_authorization_model = 2056
    unsupported_schema_version = 2057
    cancelled = 2058
    invalid_start_time = 2059
    # openfga.v1.InternalErrorCode (HTTP 500 family)
    internal_error = 4000
    deadline_exceeded = 4004
    already_exists = 4005
    resource_exhausted = 4006
    failed_precondition = 4007
    aborted = 4008
    out_of_range = 4009
    unavailable = 4010
    data_loss = 4011
    # openfga.v1.NotFoundErrorCode (HTTP 404)
    undefined_endpoint = 5000
    store_id_not_found = 5002
    unimplemented = 5004


def _status_for(code: ErrorCode) -> int:
    if code >= 5000:
        return 501 if code == ErrorCode.unimplemented else 404
    if code >= 4000:
        return {
            ErrorCode.deadline_exceeded: 504,
            ErrorCode.already_exists: 409,
            ErrorCode.resource_exhausted: 429,
            ErrorCode.failed_precondition: 400,
            ErrorCode.aborted: 409,
            ErrorCode.unavailable: 503,
        }.get(code, 500)
    if code == ErrorCode.write_failed_due_to_invalid_input:
        return 400
    return 400


class FGAError(TesseraError):
    """An OpenFGA API error: ``code`` is the name (``validation_error``), ``error_code`` the number."""

    def __init__(self, error_code: ErrorCode, message: str = ""):
        super().__init__(
            message or error_code.name, code=error_code.name, status_code=_status_for(error_code)
        )
        self.error_code = error_code
        self.message = message or error_code.name

    def to_json(self) -> dict[str, str]:
        # The body OpenFGA's HTTP gateway returns: {"code": "...", "message": "..."}.
        return {"code": self.error_code.name, "message": self.message}

    def __repr__(self) -> str:
        return f"FGAError({self.error_code.name}, {self.message!r})"


def validation(message: str) -> FGAError:
    return FGAError(ErrorCode.validation_error, message)


def invalid_tuple(message: str) -> FGAError:
    return FGAError(ErrorCode.invalid_tuple, message)


class ResolutionTooComplex(FGAError):
    def __init__(self, depth: int):
        super().__init__(
            ErrorCode.authorization_model_resolution_too_complex,
            f"Authorization Model resolution required too many rewrite rules to be resolved. "
            f"Check your authorization model for infinite recursion or too much nesting (depth {depth})",
        )


class ConditionError(FGAError):
    """A condition that cannot be evaluated (missing parameter, bad type, cost overrun): validation_error."""

    def __init__(self, message: str):
        super().__init__(ErrorCode.validation_error, message)
