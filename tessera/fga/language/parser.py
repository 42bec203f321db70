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

Errors use the messages of OpenFGA's ANTLR parser (``mismatched input 'x' expecting ...``, ``extraneous
input``, ``missing ':' at ...``, ``no viable alternative at input ...``) with the offending token's position.
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
from .lexer import BUTNOT, CEL, EOF, NL, WORD, WS, Lexer, Token

# Words that may be used as type, relation and condition names (OpenFGA's grammar accepts these keywords as
# identifiers; `define`, `relations`, `and`, `or`, `from`, `with`, `condition` are not).
NAME_KEYWORDS = ("module", "model", "schema", "extend", "type", "relation")
RESERVED_NOT_NAMES = {"define", "relations", "and", "or", "from", "with", "condition"}
# IDENTIFIER and EXTENDED_IDENTIFIER (which adds `.` and `/`, as in `a.b/c`).
NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-./]*$")
IDENTIFIER_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
SCHEMA_VERSION_RE = re.compile(r"^[0-9]+\.[0-9]+$")
PARAM_TYPES = ("bool", "string", "int", "uint", "double", "duration", "timestamp", "ipaddress")
PARAM_CONTAINERS = ("map", "list")

NAME_SET = "IDENTIFIER, 'module', 'model', 'schema', 'extend', 'type', 'relation', EXTENDED_IDENTIFIER"
NAME_EXPECTED = "{" + NAME_SET + "}"
# Condition parameter names must be plain identifiers: keywords (the parameter types included) are tokens of
# their own in OpenFGA's grammar.
PARAM_NAME_EXCLUDED = set(NAME_KEYWORDS) | RESERVED_NOT_NAMES | set(PARAM_TYPES) | set(("map", "list"))


class _Fail(Exception):
    """An error after which OpenFGA's parser reports nothing more: stop parsing."""

    def __init__(self, detail: ErrorDetail | None):
        super().__init__(detail.msg if detail else "")
        self.detail = detail


class _SkipLine(_Fail):
    """A mismatch inside a relation definition. OpenFGA's parser reports nothing after one (its recovery
    swallows the rest of the input), so this stops parsing too."""


def _is_name(tok: Token) -> bool:
    return tok.kind == WORD and tok.text not in RESERVED_NOT_NAMES and NAME_RE.match(tok.text) is not None


def _starts_operand(tok: Token) -> bool:
    return _is_name(tok) or tok.is_punct("(")


class Parser:
    """Recursive descent with the error recovery of ANTLR's default strategy, where OpenFGA's cases show it.

    On an unexpected token: if the token after it is one that could come here, the token is reported as
    ``extraneous input`` and dropped; if the expected token is a lone ``:`` and the token could follow it, a
    ``missing ':'`` is reported and parsing goes on; otherwise ``mismatched input`` is reported and parsing
    stops (OpenFGA's parser reports nothing after one). As in ANTLR, after one error no other is reported
    until a token has been matched again.
    """

    def __init__(self, source: str, file: str | None = None):
        self.file = file
        self.lexer = Lexer(source)
        self.toks = self.lexer.tokens()
        self.i = 0
        self.errors: list[ErrorDetail] = []
        self.recovering = False

    def _span(self, tok: Token) -> Span:
        return Span(tok.line, tok.column, tok.column + tok.width, self.file)

    def _detail(self, msg: str, tok: Token) -> ErrorDetail:
        line = tok.line
        return ErrorDetail(
            msg, (line, line), (tok.column, tok.column + tok.width), symbol=tok.raw, file=self.file
        )

    # -- token helpers -------------------------------------------------------------------------------------
    @property
    def tok(self) -> Token:
        return self.toks[self.i]

    def peek(self, k: int = 1) -> Token:
        return self.toks[min(self.i + k, len(self.toks) - 1)]

    def advance(self) -> Token:
        """Match the current token (which ends error recovery)."""
        tok = self.toks[self.i]
        if tok.kind != EOF:
            self.i += 1
        self.recovering = False
        return tok

    def drop(self) -> None:
        """Consume the current token as part of error recovery."""
        if self.tok.kind != EOF:
            self.i += 1

    def skip_ws(self) -> bool:
        skipped = False
        while self.tok.kind == WS:
            self.advance()
            skipped = True
        return skipped

    def report(self, msg: str, tok: Token | None = None) -> ErrorDetail | None:
        if self.recovering:
            return None
        self.recovering = True
        detail = self._detail(msg, tok or self.tok)
        self.errors.append(detail)
        return detail

    def fatal(self, msg: str, tok: Token | None = None) -> _Fail:
        self.report(msg, tok)
        return _Fail(None)

    def mismatched(self, expecting: str, tok: Token | None = None) -> _Fail:
        tok = tok or self.tok
        return self.fatal(f"mismatched input '{tok.display}' expecting {expecting}", tok)

    def skip_line(self, msg: str, tok: Token | None = None) -> _SkipLine:
        self.report(msg, tok)
        return _SkipLine(None)

    def mismatched_line(self, expecting: str, tok: Token | None = None) -> _SkipLine:
        tok = tok or self.tok
        return self.skip_line(f"mismatched input '{tok.display}' expecting {expecting}", tok)

    def extraneous(self, expecting: str) -> None:
        self.report(f"extraneous input '{self.tok.display}' expecting {expecting}")
        self.drop()

    def expect_ws(self, line_level: bool = False) -> None:
        if self.tok.kind != WS:
            if line_level:
                raise self.mismatched_line("WHITESPACE")
            raise self.mismatched("WHITESPACE")
        self.advance()

    def expect_punct(self, char: str, expecting: str | None = None) -> Token:
        if not self.tok.is_punct(char):
            raise self.mismatched(expecting or f"'{char}'")
        return self.advance()

    def name(self, line_level: bool = False) -> Name:
        tok = self.tok
        if not _is_name(tok):
            if line_level:
                raise self.mismatched_line(NAME_EXPECTED)
            raise self.mismatched(NAME_EXPECTED)
        self.advance()
        return Name(tok.text, self._span(tok))

    # -- file ----------------------------------------------------------------------------------------------
    def parse(self) -> ModelFile:
        try:
            model = self._file()
        except _Fail:
            raise DSLSyntaxError(self.errors) from None
        if self.errors:
            raise DSLSyntaxError(self.errors)
        return model

    def _file_start(self) -> None:
        # `WHITESPACE? NEWLINE?` may precede the header (comments are folded into NEWLINE by the lexer).
        sets = [
            (WS, "{WHITESPACE, '#', 'module', 'model', NEWLINE}"),
            (NL, "{'#', 'module', 'model', NEWLINE}"),
        ]
        stage = 0
        while True:
            tok = self.tok
            if tok.is_word("model", "module"):
                return
            allowed = [kind for kind, _ in sets[stage:]]
            if tok.kind in allowed:
                stage = allowed.index(tok.kind) + stage + 1
                self.advance()
                if tok.kind == NL:
                    while self.tok.kind in (WS, NL):
                        self.advance()
                    return
                continue
            if stage < len(sets):
                nxt = self.peek()
                if nxt.is_word("model", "module") or nxt.kind in allowed:
                    self.extraneous(sets[stage][1])
                    continue
            raise self.mismatched("{'#', 'module', 'model'}")

    def _file(self) -> ModelFile:
        self._file_start()
        if not self.tok.is_word("model", "module"):
            raise self.mismatched("{'#', 'module', 'model'}")
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
        else:
            self.advance()
            self.expect_ws()
            module = self.name()
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
                        self.errors.append(
                            self._at(f"'{typedef.name.text}' is already extended in file.", typedef.name)
                        )
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
                raise self.fatal(f"no viable alternative at input '{self._input_from_newline()}'")
        return ModelFile(schema_version, schema_span, module, types, conditions)

    def _input_from_newline(self) -> str:
        # ANTLR's "no viable alternative" quotes the input from the start of the decision: the line end.
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
            if not typedef.relations and not self.errors:
                if self.tok.kind == NL:
                    self.advance()
                    self.skip_ws()
                raise self.fatal(f"no viable alternative at input '{self._input_from_newline()}'")
        return typedef

    def _after_newline(self) -> Token:
        k = 1
        while self.peek(k).kind == WS:
            k += 1
        return self.peek(k)

    def _define(self) -> RelationDef:
        self.expect_ws(line_level=True)
        name = self.name(line_level=True)
        self.skip_ws()
        if self.tok.is_punct(":"):
            self.advance()
        elif self.peek().is_punct(":"):
            self.extraneous("':'")
            self.advance()
        elif _starts_operand(self.tok) or self.tok.is_punct("["):
            # ANTLR's single-token insertion: carry on as if the ':' were there.
            self.report(f"missing ':' at '{self.tok.display}'")
        else:
            raise self.mismatched_line("':'")
        ws = self.skip_ws()
        if self.tok.is_punct(":") and (
            _starts_operand(self.peek()) or self.peek().kind == WS or self.peek().is_punct("[")
        ):
            self.extraneous("{'[', '(', " + ("" if ws else "WHITESPACE, ") + NAME_SET + "}")
            self.skip_ws()
        restrictions: list[TypeRestriction] = []
        rewrite = self._expr(restrictions, leftmost=True)
        if self.tok.kind not in (NL, EOF):
            if self.peek().kind in (NL, EOF):
                self.extraneous("{<EOF>, NEWLINE}")
            else:
                raise self.mismatched_line("{<EOF>, NEWLINE}")
        return RelationDef(name, rewrite, restrictions)

    # -- relation definitions ------------------------------------------------------------------------------
    def _op_after_ws(self) -> Token | None:
        if self.tok.kind != WS:
            return None
        nxt = self.peek()
        if nxt.kind == BUTNOT or nxt.is_word("or", "and"):
            return nxt
        return None

    @staticmethod
    def _op_kind(tok: Token) -> str:
        if tok.kind == BUTNOT:
            return "difference"
        return "union" if tok.text == "or" else "intersection"

    def _expr(
        self, restrictions: list[TypeRestriction], leftmost: bool, after_paren: bool = False
    ) -> Rewrite:
        first = self._operand(restrictions, leftmost, after_paren)
        op_tok = self._op_after_ws()
        if op_tok is None:
            return first
        op = self._op_kind(op_tok)
        children = [first]
        while True:
            nxt = self._op_after_ws()
            # A different operator, or a second `but not`, needs parentheses: the chain ends here and the
            # caller reports what follows.
            if nxt is None or self._op_kind(nxt) != op or (op == "difference" and len(children) == 2):
                break
            self.advance()
            self.advance()
            self.expect_ws(line_level=True)
            children.append(self._operand(restrictions, False))
        start = first.span
        end = children[-1].span
        return Rewrite(op, Span(start.line, start.start, end.end, self.file), children=children)

    def _operand(
        self, restrictions: list[TypeRestriction], leftmost: bool, after_paren: bool = False
    ) -> Rewrite:
        expecting = "{" + ("'[', " if leftmost else "") + "'(', " + ("WHITESPACE, " if after_paren else "")
        expecting += NAME_SET + "}"
        tok = self.tok
        if tok.is_punct("[") and not leftmost:
            # The direct assignment may only be the first operand.
            if _starts_operand(self.peek()) or (after_paren and self.peek().kind == WS):
                self.extraneous(expecting)
                self.skip_ws()
                tok = self.tok
            else:
                raise self.mismatched_line(expecting)
        if tok.is_punct("["):
            return self._direct(restrictions)
        if tok.is_punct("("):
            self.advance()
            ws = self.skip_ws()
            inner = self._expr(restrictions, leftmost, after_paren=not ws)
            while True:
                ws = self.skip_ws()
                if self.tok.is_punct(")"):
                    self.advance()
                    return inner
                if self.peek().is_punct(")") or self.peek().kind == WS:
                    self.extraneous("{')', WHITESPACE}")
                    continue
                raise self.mismatched_line("{')', WHITESPACE}")
        if not _is_name(tok):
            raise self.mismatched_line(expecting)
        rel = self.name(line_level=True)
        if self.tok.kind == WS and self.peek().is_word("from"):
            self.advance()
            self.advance()
            self.expect_ws(line_level=True)
            tupleset = self.name(line_level=True)
            return Rewrite(
                "ttu",
                Span(rel.span.line, rel.span.start, tupleset.span.end, self.file),
                relation=rel,
                tupleset=tupleset,
            )
        return Rewrite("computed", rel.span, relation=rel)

    def _bracket_gap(self) -> tuple[bool, bool]:
        """Spaces and line ends OpenFGA accepts inside `[...]`; returns (whitespace seen, line end seen)."""
        ws = nl = False
        while self.tok.kind in (WS, NL):
            if self.tok.kind == NL:
                nl = True
                ws = False
            else:
                ws = True
            self.advance()
        return ws, nl

    def _direct(self, restrictions: list[TypeRestriction]) -> Rewrite:
        open_tok = self.advance()
        ws, nl = self._bracket_gap()
        while True:
            restriction = self._restriction(ws, nl)
            if restriction is not None:
                restrictions.append(restriction)
            ws, nl = self._bracket_gap()
            if self.tok.is_punct(","):
                self.advance()
                ws, nl = self._bracket_gap()
                continue
            if self.tok.is_punct("]"):
                close = self.advance()
                break
            raise self.mismatched_line("{',', " + ("" if ws else "WHITESPACE, ") + "']'}")
        return Rewrite(
            "this",
            Span(open_tok.line, open_tok.column, close.column + 1, self.file),
            restrictions=list(restrictions),
        )

    def _restriction(self, ws: bool, nl: bool) -> TypeRestriction | None:
        while not _is_name(self.tok):
            expecting = "{" + ("" if ws else "WHITESPACE, ") + NAME_SET + ("" if nl else ", NEWLINE") + "}"
            nxt = self.peek()
            if _is_name(nxt) or nxt.kind in ((WS,) if not ws else ()) + ((NL,) if not nl else ()):
                self.extraneous(expecting)
                more_ws, more_nl = self._bracket_gap()
                ws = more_ws if more_nl else (ws or more_ws)
                nl = nl or more_nl
                continue
            # Mismatched: ANTLR reports it and drops the token, then resumes after the restriction.
            self.report(f"mismatched input '{self.tok.display}' expecting {NAME_EXPECTED}")
            self.drop()
            return None
        type_tok = self.tok
        type_name = self.name(line_level=True)
        restriction = TypeRestriction(type_name)
        end = type_name.span.end
        if self.tok.is_punct(":"):
            self.advance()
            if not self.tok.is_punct("*"):
                raise self.mismatched_line("'*'")
            end = self.advance().column + 1
            restriction.wildcard = True
        elif self.tok.is_punct("#"):
            self.advance()
            if not _is_name(self.tok):
                text = "".join(t.display for t in self.toks[self.i - 2 : self.i + 1])
                raise self.skip_line(f"no viable alternative at input '{text}'", self.tok)
            restriction.relation = self.name(line_level=True)
            end = restriction.relation.span.end
        restriction.span = Span(type_tok.line, type_tok.column, end, self.file)
        if self.tok.kind == WS and self.peek().is_word("with"):
            self.advance()
            self.advance()
            self.expect_ws(line_level=True)
            restriction.condition = self.name(line_level=True)
        return restriction

    # -- conditions ----------------------------------------------------------------------------------------
    def _body_start_error(self) -> None:
        """After a bad first parameter OpenFGA's parser resynchronises past the condition's header and then
        stops at the first token of the body, expecting the end of the input."""
        j = self.i
        while j < len(self.toks) and self.toks[j].kind != CEL:
            j += 1
        if j >= len(self.toks):
            return
        body = self.toks[j]
        text = body.text
        k = 0
        while k < len(text) and text[k] in " \t\r\n":
            k += 1
        if k >= len(text):
            return
        m = k
        while m < len(text) and (text[m].isalnum() or text[m] == "_"):
            m += 1
        word = text[k : max(m, k + 1)]
        line, col = self.lexer.position(body.start + 1 + k)
        self.recovering = False
        self.report(
            f"mismatched input '{word}' expecting <EOF>",
            Token(WORD, word, body.start + 1 + k, body.start + 1 + k + len(word), line, col),
        )

    def _condition(self) -> ConditionDef:
        self.advance()
        self.expect_ws()
        name = self.name()
        self.skip_ws()
        self.expect_punct("(")
        ws = self.skip_ws()
        params: list[ConditionParam] = []
        while True:
            tok = self.tok
            if not (
                tok.kind == WORD and IDENTIFIER_RE.match(tok.text) and tok.text not in PARAM_NAME_EXCLUDED
            ):
                expecting = "{" + ("" if ws else "WHITESPACE, ") + "IDENTIFIER, NEWLINE}"
                self.report(f"mismatched input '{tok.display}' expecting {expecting}")
                if not params:
                    self._body_start_error()
                raise _Fail(None)
            param = self._param()
            if any(p.name.text == param.name.text for p in params):
                self.errors.append(
                    self._at(
                        f"parameter '{param.name.text}' is already defined in the condition '{name.text}'",
                        param.name,
                    )
                )
            params.append(param)
            self.skip_ws()
            if self.tok.is_punct(","):
                self.advance()
                ws = self.skip_ws()
                continue
            self.expect_punct(")", "{',', ')', NEWLINE}")
            break
        ws = self.skip_ws()
        if self.tok.kind != CEL:
            raise self.mismatched("{" + ("" if ws else "WHITESPACE, ") + "'{'}")
        body = self.advance()
        return ConditionDef(name, params, strip_cel_comments(body.text).strip())

    def _param(self) -> ConditionParam:
        name = self.name()
        self.skip_ws()
        if self.tok.is_punct(":"):
            self.advance()
        elif self.tok.is_word(*PARAM_TYPES, *PARAM_CONTAINERS):
            self.report(f"missing ':' at '{self.tok.display}'")
        else:
            raise self.mismatched("':'")
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


def strip_cel_comments(text: str) -> str:
    """Drop `# ...` comments from a condition body (outside string literals), as OpenFGA's lexer does."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch in "\"'":
            quote = text[i : i + 3] if text[i : i + 3] in ('"""', "'''") else ch
            j = i + len(quote)
            while j < n and not text.startswith(quote, j):
                j += 2 if text[j] == "\\" else 1
            j = min(n, j + len(quote))
            out.append(text[i:j])
            i = j
            continue
        if ch == "#" and (i == 0 or text[i - 1] in " \t\r\n"):
            while i < n and text[i] != "\n":
                i += 1
            while out and out[-1] in (" ", "\t"):
                out.pop()
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def parse_dsl(source: str, file: str | None = None) -> ModelFile:
    """Parse DSL text; raises :class:`DSLSyntaxError` with every error found."""
    return Parser(source, file).parse()
