"""Conditions: CEL expressions with typed parameters, evaluated with the ``common-expression-language``
library (a Rust CEL implementation; we only add OpenFGA's parameter types and its rules around them).

OpenFGA's rules implemented here:

* Parameters are declared with a type (``TYPE_NAME_BOOL``, ``STRING``, ``INT``, ``UINT``, ``DOUBLE``,
  ``DURATION``, ``TIMESTAMP``, ``IPADDRESS``, ``MAP<T>``, ``LIST<T>``, ``ANY``); values coming from a tuple's
  context or the request's context are converted to that type, and a value that does not convert is an error.
* The tuple's context and the request's context are merged; the tuple's values win.
* A parameter the expression needs but neither context supplies is an error (not "false"): OpenFGA reports the
  missing parameters rather than guessing.
* ``ipaddress`` values support ``ip.in_cidr("10.0.0.0/8")``.
* Evaluation cost is bounded. The Rust library has no cost meter, so we bound what makes CEL expensive: the
  size of the expression (checked when the model is written) and, at evaluation time, the size of the
  collections the expression iterates over (comprehension macros), mirroring OpenFGA's default limit of 100.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import cel

from tessera.fga.engine.errors import ConditionError, ErrorCode, FGAError

MAX_EVALUATION_COST = 100  # OpenFGA's default maxConditionEvaluationCost
MAX_EXPRESSION_LENGTH = 2048
_MACROS = ("all", "exists", "exists_one", "map", "filter")

TYPE_NAMES = {
    "TYPE_NAME_ANY",
    "TYPE_NAME_BOOL",
    "TYPE_NAME_STRING",
    "TYPE_NAME_INT",
    "TYPE_NAME_UINT",
    "TYPE_NAME_DOUBLE",
    "TYPE_NAME_DURATION",
    "TYPE_NAME_TIMESTAMP",
    "TYPE_NAME_MAP",
    "TYPE_NAME_LIST",
    "TYPE_NAME_IPADDRESS",
}
_INT64 = (-(2**63), 2**63 - 1)
_UINT64 = (0, 2**64 - 1)


@dataclass(frozen=True, slots=True)
class ParamType:
    name: str
    generic: tuple[ParamType, ...] = ()

    def __str__(self) -> str:
        base = self.name.removeprefix("TYPE_NAME_").lower()
        return f"{base}<{', '.join(map(str, self.generic))}>" if self.generic else base


def _parse_param_type(data: Mapping[str, Any], where: str) -> ParamType:
    name = str(data.get("type_name", ""))
    if name not in TYPE_NAMES:
        raise FGAError(ErrorCode.invalid_authorization_model, f"unknown parameter type '{name}' in {where}")
    generic = tuple(_parse_param_type(g, where) for g in data.get("generic_types") or [])
    if name in ("TYPE_NAME_MAP", "TYPE_NAME_LIST") and len(generic) != 1:
        raise FGAError(ErrorCode.invalid_authorization_model, f"{name} needs one generic type in {where}")
    return ParamType(name, generic)


_DURATION_RE = re.compile(r"([0-9]*\.?[0-9]+)(ns|us|µs|ms|s|m|h)")
_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> timedelta:
    """Go's ``time.ParseDuration`` syntax ("1h30m", "1.5s", "-2m"), which OpenFGA's CEL durations use."""
    s = text.strip()
    sign = -1.0 if s.startswith("-") else 1.0
    s = s.lstrip("+-")
    if s == "0":
        return timedelta(0)
    pos, total = 0, 0.0
    for m in _DURATION_RE.finditer(s):
        if m.start() != pos:
            raise ValueError(text)
        total += float(m.group(1)) * _DURATION_UNITS[m.group(2)]
        pos = m.end()
    if pos != len(s) or not s:
        raise ValueError(text)
    return timedelta(seconds=sign * total)


def convert(value: Any, t: ParamType) -> Any:
    """Convert a JSON value to the declared parameter type; ValueError when it does not fit."""
    n = t.name
    if n == "TYPE_NAME_ANY":
        return value
    if n == "TYPE_NAME_BOOL":
        if isinstance(value, bool):
            return value
    elif n == "TYPE_NAME_STRING":
        if isinstance(value, str):
            return value
    elif n in ("TYPE_NAME_INT", "TYPE_NAME_UINT"):
        lo, hi = _INT64 if n == "TYPE_NAME_INT" else _UINT64
        if isinstance(value, str):
            value = int(value)
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, int) and not isinstance(value, bool) and lo <= value <= hi:
            return value
    elif n == "TYPE_NAME_DOUBLE":
        if isinstance(value, str):
            value = float(value)
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
    elif n == "TYPE_NAME_DURATION":
        if isinstance(value, str):
            return parse_duration(value)
    elif n == "TYPE_NAME_TIMESTAMP":
        if isinstance(value, str):
            ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
            if ts.tzinfo is None:
                raise ValueError("timestamp without offset")
            return ts.astimezone(UTC)
    elif n == "TYPE_NAME_IPADDRESS":
        if isinstance(value, str):
            # Kept as its canonical text: CEL compares strings; in_cidr parses again.
            return str(ipaddress.ip_address(value))
    elif n == "TYPE_NAME_LIST":
        if isinstance(value, list):
            return [convert(v, t.generic[0]) for v in value]
    elif n == "TYPE_NAME_MAP" and isinstance(value, Mapping):
        return {str(k): convert(v, t.generic[0]) for k, v in value.items()}
    raise ValueError(f"expected {t}, got {type(value).__name__}")


def _in_cidr(ip: Any, cidr: Any) -> bool:
    try:
        return ipaddress.ip_address(str(ip)) in ipaddress.ip_network(str(cidr), strict=False)
    except ValueError as exc:
        raise ValueError(f"in_cidr: {exc}") from None


@dataclass
class Condition:
    name: str
    expression: str
    parameters: dict[str, ParamType]
    program: Any = field(repr=False)
    variables: frozenset[str] = frozenset()
    iterates: bool = False

    def check_context_types(self, context: Mapping[str, Any]) -> None:
        """Type-check a tuple's stored context (Write refuses values of the wrong type)."""
        for k, v in context.items():
            t = self.parameters.get(k)
            if t is None:
                continue  # unknown keys are ignored, as OpenFGA does
            try:
                convert(v, t)
            except (ValueError, TypeError) as exc:
                raise FGAError(
                    ErrorCode.validation_error,
                    f"failed to convert context parameter '{k}' of condition '{self.name}': {exc}",
                ) from None

    def evaluate(
        self, tuple_context: Mapping[str, Any] | None, request_context: Mapping[str, Any] | None
    ) -> bool:
        merged: dict[str, Any] = {}
        missing: list[str] = []
        for pname, ptype in self.parameters.items():
            if tuple_context and pname in tuple_context:
                raw = tuple_context[pname]
            elif request_context and pname in request_context:
                raw = request_context[pname]
            else:
                if pname in self.variables:
                    missing.append(pname)
                continue
            try:
                merged[pname] = convert(raw, ptype)
            except (ValueError, TypeError) as exc:
                raise ConditionError(
                    f"failed to evaluate relationship condition '{self.name}': failed to convert context "
                    f"parameter '{pname}': {exc}"
                ) from None
        if missing:
            raise ConditionError(
                f"failed to evaluate relationship condition '{self.name}': tuple is missing parameters "
                f"{sorted(missing)} required by the condition"
            )
        if self.iterates:
            cost = sum(len(v) for v in merged.values() if isinstance(v, list | dict)) * max(
                1, self.expression.count("(")
            )
            if cost > MAX_EVALUATION_COST:
                raise ConditionError(
                    f"failed to evaluate relationship condition '{self.name}': operation cancelled: "
                    f"actual cost limit exceeded (estimated cost {cost} > {MAX_EVALUATION_COST})"
                )
        ctx = cel.Context(merged, {"in_cidr": _in_cidr})
        try:
            result = self.program.execute(ctx)
        except Exception as exc:  # the CEL runtime raises TypeError/RuntimeError/ValueError
            raise ConditionError(f"failed to evaluate relationship condition '{self.name}': {exc}") from None
        if not isinstance(result, bool):
            raise ConditionError(
                f"failed to evaluate relationship condition '{self.name}': expected a boolean, got "
                f"{type(result).__name__}"
            )
        return result


def compile_condition(name: str, data: Mapping[str, Any]) -> Condition:
    expression = str(data.get("expression", ""))
    where = f"condition '{name}'"
    if data.get("name") not in (None, "", name):
        raise FGAError(ErrorCode.invalid_authorization_model, f"{where}: name does not match its key")
    if not expression.strip():
        raise FGAError(ErrorCode.invalid_authorization_model, f"{where}: empty expression")
    if len(expression) > MAX_EXPRESSION_LENGTH:
        raise FGAError(
            ErrorCode.invalid_authorization_model,
            f"{where}: expression exceeds {MAX_EXPRESSION_LENGTH} characters (cost limit)",
        )
    params = {str(p): _parse_param_type(t or {}, where) for p, t in (data.get("parameters") or {}).items()}
    try:
        program = cel.compile(expression)
    except (ValueError, RuntimeError) as exc:
        raise FGAError(
            ErrorCode.invalid_authorization_model, f"failed to compile expression on {where}: {exc}"
        ) from None
    refs = program.references()
    variables = frozenset(refs.get("variables", []))
    functions = set(refs.get("functions", []))
    iterates = bool(functions & set(_MACROS)) or any(f"{m}(" in expression for m in _MACROS)
    if not iterates:
        unknown = sorted(v for v in variables if v not in params)
        if unknown:
            raise FGAError(
                ErrorCode.invalid_authorization_model,
                f"failed to compile expression on {where}: undeclared references {unknown}",
            )
    return Condition(name, expression, params, program, variables, iterates)
