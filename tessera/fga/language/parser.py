"""Recursive-descent parser for OpenFGA's DSL (schema 1.1 models and 1.2 module files).

The grammar, informally (``_`` is optional whitespace inside a line, ``NL`` one or more line ends)::

    file        := (model | module) (NL (type | condition))* NL?
    model       := 'model' NL 'schema' ' ' VERSION
    module      := 'module' ' ' NAME
    type        := ['extend' ' '] 'type' ' ' NAME [NL 'relations' (NL 'define' ' ' NAME _ ':' _ definition)+]
    definition  := operand ((' or ' operand)+ | (' and ' operand)+ | ' but not ' operand)?
    operand     := '[' _ restriction (_ ',' _ restriction)* _ ']'      (only as the leftmost operand)
                 | NAME ' from ' NAME | NAME | '(' _ definition _ ')'
    restriction := NAME (':*' | '#' NAME)? (' with ' NAME)?
    condition   := 'condition' ' ' NAME _ '(' _ param (_ ',' _ param)* _ ')' _ '{' CEL '}'
    param       := NAME _ ':' _ (TYPE | ('map' | 'list') '<' TYPE '>')

Errors use the messages of OpenFGA's ANTLR parser (``mismatched input 'x' expecting ...``, ``extraneous input``,
``missing ':' at ...``, ``no viable alternative at input ...``) with the offending token's position.
"""

from __future__ import annotations

import re

from .ast import (
    ConditionDef,
    ConditionParam,
    ModelFile,
    Name,
    RelationDef,
    Rewrite,
    Span,
    TypeDef,
    TypeRestriction,
)
from .errors import DSLSyntaxError, ErrorDetail
from .lexer import BUTNOT, CEL, EOF, NL, PUNCT, WORD, WS, Lexer, Token

# Words that may be used as type, relation and condition names (OpenFGA's grammar accepts these keywords as
# identifiers; `define`, `relations`, `and`, `or`, `from`, `with`, `condition` are not).
NAME_KEYWORDS = ("module", "model", "schema", "extend", "type", "relation")
RESERVED_NOT_NAMES = {"define", "relations", "and", "or", "from", "with", "condition", "but"}
IDENTIFIER_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
SCHEMA_VERSION_RE = re.compile(r"^[0-9]+\.[0-9]+$")
PARAM_TYPES = ("bool", "string", "int", "uint", "double", "duration", "timestamp", "ipaddress")
PARAM_CONTAINERS = ("map", "list")

NAME_EXPECTED = (
    "{IDENTIFIER, 'module', 'model', 'schema', 'extend', 'type', 'relation', EXTENDED_IDENTIFIER}"
)


class _Fail(Exception):
    def __init__(self, detail: ErrorDetail):
        super().__init__(detail.msg)
        self.detail = detail




def _is_name(tok: Token) -> bool:
    return tok.kind == WORD and tok.text not in RESERVED_NOT_NAMES


class Parser:
    def __init__(self, source: str, file: str | None = None):
        self.file = file
        self.lexer = Lexer(source)
        self.toks = self.lexer.tokens()
        self.i = 0
        self.errors: list[ErrorDetail] = []

    def _span(self, tok: Token) -> Span:
        return Span(tok.line, tok.column, tok.column + tok.width, self.file)

    def _detail(self, msg: str, tok: Token) -> ErrorDetail:
        line = tok.line
        return ErrorDetail(
            msg, (line, line), (tok.column, tok.column + tok.width), symbol=tok.display, file=self.file
        )

    # -- token helpers -------------------------------------------------------------------------------------
    @property
    def tok(self) -> Token:
        return self.toks[self.i]

    def peek(self, k: int = 1) -> Token:
        return self.toks[min(self.i + k, len(self.toks) - 1)]

    def advance(self) -> Token:
        tok = self.toks[self.i]
        if tok.kind != EOF:
            self.i += 1
        return tok

    def skip_ws(self) -> None:
        while self.tok.kind == WS:
            self.i += 1

    def fail(self, msg: str, tok: Token | None = None) -> _Fail:
        return _Fail(self._detail(msg, tok or self.tok))

    def mismatched(self, expecting: str, tok: Token | None = None) -> _Fail:
        tok = tok or self.tok
        return self.fail(f"mismatched input '{tok.display}' expecting {expecting}", tok)

    def expect_ws(self) -> None:
        if self.tok.kind != WS:
            raise self.mismatched("WHITESPACE")
        self.advance()

    def expect_punct(self, char: str, expecting: str | None = None) -> Token:
        if not self.tok.is_punct(char):
            raise self.mismatched(expecting or f"'{char}'")
        return self.advance()

    def name(self) -> Name:
        tok = self.tok
        if not _is_name(tok):
            raise self.mismatched(NAME_EXPECTED)
        self.advance()
        return Name(tok.text, self._span(tok))

    # -- file ----------------------------------------------------------------------------------------------
    def parse(self) -> ModelFile:
        try:
            model = self._file()
        except _Fail as exc:
            self.errors.append(exc.detail)
            raise DSLSyntaxError(self.errors) from None
        if self.errors:
            raise DSLSyntaxError(self.errors)
        return model

    def _file(self) -> ModelFile:
        while self.tok.kind in (WS, NL):
            self.advance()
        schema_version: str | None = None
        schema_span: Span | None = None
        module: Name | None = None
        if self.tok.is_word("model"):
            self.advance()
            if self.tok.kind != NL:
                raise self.mismatched("NEWLINE")
            self.advance()
            self.skip_ws()
            if not self.tok.is_word("schema"):
                raise self.mismatched("'schema'")
            self.advance()
            self.expect_ws()
            version = self.tok
            if version.kind != WORD or not SCHEMA_VERSION_RE.match(version.text):
                raise self.mismatched("SCHEMA_VERSION")
            self.advance()
            schema_version, schema_span = version.text, self._span(version)
        elif self.tok.is_word("module"):
            self.advance()
            self.expect_ws()
            module = self.name()
        else:
            raise self.mismatched("{'#', 'module', 'model'}")
        types: list[TypeDef] = []
        conditions: list[ConditionDef] = []
        extended: set[str] = set()
        while True:
            if self.tok.kind == EOF:
                break
            if self.tok.kind != NL:
                raise self.mismatched("{<EOF>, NEWLINE}")
            self.advance()
            self.skip_ws()
            if self.tok.kind == EOF:
                break
            if self.tok.is_word("type", "extend"):
                typedef = self._type(module is not None)
                if typedef.extend:
                    if typedef.name.text in extended:
                        self.errors.append(self._at(f"'{typedef.name.text}' is already extended in file.", typedef.name))
                    extended.add(typedef.name.text)
                types.append(typedef)
            elif self.tok.is_word("condition"):
                cond = self._condition()
                if any(c.name.text == cond.name.text for c in conditions):
                    self.errors.append(
                        self._at(f"condition '{cond.name.text}' is already defined in the model", cond.name)
                    )
                conditions.append(cond)
            else:
                raise self.fail(f"no viable alternative at input '{self._input_from_newline()}'")
        return ModelFile(schema_version, schema_span, module, types, conditions)

    def _input_from_newline(self) -> str:
        # ANTLR's "no viable alternative" quotes the input from the start of the decision (the line end before).
        j = self.i - 1
        while j > 0 and self.toks[j].kind == WS:
            j -= 1
        return "".join(t.display for t in self.toks[j : self.i + 1])

    def _at(self, msg: str, name: Name) -> ErrorDetail:
        s = name.span
        return ErrorDetail(msg, (s.line, s.line), (s.start, s.end), symbol=name.text, file=self.file)

    # -- types -----------------------------------------------------------------------------------------------
    def _type(self, in_module: bool) -> TypeDef:
        extend = False
        if self.tok.is_word("extend"):
            extend = True
            self.advance()
            self.expect_ws()
            if not self.tok.is_word("type"):
                raise self.mismatched("'type'")
        self.advance()
        self.expect_ws()
        name = self.name()
        if extend and not in_module:
            self.errors.append(self._at("extend can only be used in a modular model", name))
        typedef = TypeDef(name, [], extend=extend)
        if self.tok.kind == NL and self._after_newline().is_word("relations"):
            self.advance()
            self.skip_ws()
            self.advance()
            typedef.has_relations_block = True
            while self.tok.kind == NL and self._after_newline().is_word("define"):
                self.advance()
                self.skip_ws()
                self.advance()
                rel = self._define()
                if any(r.name.text == rel.name.text for r in typedef.relations):
                    self.errors.append(
                        self._at(f"'{rel.name.text}' is already defined in '{name.text}'", rel.name)
                    )
                typedef.relations.append(rel)
            if not typedef.relations:
                if self.tok.kind == NL:
                    self.advance()
                    self.skip_ws()
                raise self.mismatched("'define'")
        return typedef

    def _after_newline(self) -> Token:
        k = 1
        while self.peek(k).kind == WS:
            k += 1
        return self.peek(k)

    def _define(self) -> RelationDef:
        self.expect_ws()
        name = self.name()
        self.skip_ws()
        if not self.tok.is_punct(":"):
            raise self.fail(f"missing ':' at '{self.tok.display}'")
        self.advance()
        self.skip_ws()
        restrictions: list[TypeRestriction] = []
        rewrite = self._expr(restrictions, leftmost=True)
        if self.tok.kind not in (NL, EOF):
            raise self.mismatched("{<EOF>, NEWLINE}")
        return RelationDef(name, rewrite, restrictions)

    # -- relation definitions ------------------------------------------------------------------------------
    def _op_after_ws(self) -> Token | None:
        if self.tok.kind != WS:
            return None
        nxt = self.peek()
        if nxt.kind == BUTNOT or nxt.is_word("or", "and"):
            return nxt
        return None

    def _expr(self, restrictions: list[TypeRestriction], leftmost: bool) -> Rewrite:
        first = self._operand(restrictions, leftmost)
        op_tok = self._op_after_ws()
        if op_tok is None:
            return first
        op = "difference" if op_tok.kind == BUTNOT else ("union" if op_tok.text == "or" else "intersection")
        children = [first]
        while True:
            nxt = self._op_after_ws()
            if nxt is None:
                break
            this_op = "difference" if nxt.kind == BUTNOT else ("union" if nxt.text == "or" else "intersection")
            if this_op != op or (op == "difference" and len(children) == 2):
                # Operators of different kinds (or a second `but not`) need parentheses.
                raise self.mismatched("{<EOF>, NEWLINE}")
            self.advance()
            self.advance()
            self.expect_ws()
            children.append(self._operand(restrictions, False))
        start = first.span
        end = children[-1].span
        return Rewrite(op, Span(start.line, start.start, end.end, self.file), children=children)

    def _operand(self, restrictions: list[TypeRestriction], leftmost: bool) -> Rewrite:
        tok = self.tok
        if tok.is_punct("["):
            if not leftmost:
                raise self.fail(
                    "extraneous input '[' expecting {'(', IDENTIFIER, 'module', 'model', 'schema', 'extend', "
                    "'type', 'relation', EXTENDED_IDENTIFIER}"
                )
            return self._direct(restrictions)
        if tok.is_punct("("):
            self.advance()
            self.skip_ws()
            inner = self._expr(restrictions, leftmost)
            self.skip_ws()
            if not self.tok.is_punct(")"):
                raise self.fail(f"extraneous input '{self.tok.display}' expecting {{')', WHITESPACE}}")
            self.advance()
            return inner
        if not _is_name(tok):
            expecting = "{'[', '(', " if leftmost else "{'(', "
            raise self.mismatched(
                expecting + "IDENTIFIER, 'module', 'model', 'schema', 'extend', 'type', 'relation', "
                "EXTENDED_IDENTIFIER}"
            )
        rel = self.name()
        if self.tok.kind == WS and self.peek().is_word("from"):
            self.advance()
            self.advance()
            self.expect_ws()
            tupleset = self.name()
            return Rewrite(
                "ttu",
                Span(rel.span.line, rel.span.start, tupleset.span.end, self.file),
                relation=rel,
                tupleset=tupleset,
            )
        return Rewrite("computed", rel.span, relation=rel)

    def _direct(self, restrictions: list[TypeRestriction]) -> Rewrite:
        open_tok = self.advance()
        self.skip_ws()
        while True:
            restrictions.append(self._restriction())
            self.skip_ws()
            if self.tok.is_punct(","):
                self.advance()
                self.skip_ws()
                continue
            if self.tok.is_punct("]"):
                close = self.advance()
                break
            raise self.mismatched("{',', WHITESPACE, ']'}")
        return Rewrite(
            "this", Span(open_tok.line, open_tok.column, close.column + 1, self.file), restrictions=list(restrictions)
        )

    def _restriction(self) -> TypeRestriction:
        type_tok = self.tok
        type_name = self.name()
        restriction = TypeRestriction(type_name)
        end = type_name.span.end
        if self.tok.is_punct(":"):
            self.advance()
            if not self.tok.is_punct("*"):
                raise self.mismatched("'*'")
            end = self.advance().column + 1
            restriction.wildcard = True
        elif self.tok.is_punct("#"):
            self.advance()
            restriction.relation = self.name()
            end = restriction.relation.span.end
        restriction.span = Span(type_tok.line, type_tok.column, end, self.file)
        if self.tok.kind == WS and self.peek().is_word("with"):
            self.advance()
            self.advance()
            self.expect_ws()
            restriction.condition = self.name()
        return restriction

    # -- conditions ----------------------------------------------------------------------------------------
    def _skip_blank(self) -> None:
        while self.tok.kind in (WS, NL):
            self.advance()

    def _condition(self) -> ConditionDef:
        self.advance()
        self.expect_ws()
        name = self.name()
        self.skip_ws()
        self.expect_punct("(")
        self._skip_blank()
        params: list[ConditionParam] = []
        while True:
            if not _is_name(self.tok):
                raise self.mismatched("{WHITESPACE, IDENTIFIER, NEWLINE}")
            param = self._param()
            if any(p.name.text == param.name.text for p in params):
                self.errors.append(
                    self._at(
                        f"parameter '{param.name.text}' is already defined in the condition '{name.text}'",
                        param.name,
                    )
                )
            params.append(param)
            self._skip_blank()
            if self.tok.is_punct(","):
                self.advance()
                self._skip_blank()
                continue
            self.expect_punct(")", "{',', ')'}")
            break
        self._skip_blank()
        if self.tok.kind != CEL:
            raise self.mismatched("'{'")
        body = self.advance()
        return ConditionDef(name, params, body.text.strip())

    def _param(self) -> ConditionParam:
        name = self.name()
        self.skip_ws()
        self.expect_punct(":")
        self.skip_ws()
        tok = self.tok
        if tok.is_word(*PARAM_CONTAINERS):
            self.advance()
            self.expect_punct("<")
            inner = self.tok
            if not inner.is_word(*PARAM_TYPES):
                raise self.mismatched("CONDITION_PARAM_TYPE")
            self.advance()
            self.expect_punct(">")
            return ConditionParam(name, tok.text, inner.text)
        if not tok.is_word(*PARAM_TYPES):
            raise self.mismatched("CONDITION_PARAM_TYPE")
        self.advance()
        return ConditionParam(name, tok.text)


def parse_dsl(source: str, file: str | None = None) -> ModelFile:
    """Parse DSL text; raises :class:`DSLSyntaxError` with every error found."""
    return Parser(source, file).parse()
