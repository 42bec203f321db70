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
from collections.abc import Callable

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
NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-./]*\Z")
IDENTIFIER_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*\Z")
SCHEMA_VERSION_RE = re.compile(r"^[0-9]+\.[0-9]+\Z")
PARAM_TYPES = ("bool", "string", "int", "uint", "double", "duration", "timestamp", "ipaddress")
PARAM_CONTAINERS = ("map", "list")

NAME_SET = "IDENTIFIER, 'module', 'model', 'schema', 'extend', 'type', 'relation', EXTENDED_IDENTIFIER"
NAME_EXPECTED = "{" + NAME_SET + "}"
# Condition parameter names must be plain identifiers: keywords (the parameter types included) are tokens of
# their own in OpenFGA's grammar.
PARAM_NAME_EXCLUDED = RESERVED_NOT_NAMES | set(PARAM_TYPES) | set(PARAM_CONTAINERS)


class _Fail(Exception):
    """An error after which OpenFGA's parser reports nothing more: stop parsing."""


def _is_name(tok: Token) -> bool:
    return tok.kind == WORD and tok.text not in RESERVED_NOT_NAMES and NAME_RE.match(tok.text) is not None


def _is_operator(tok: Token) -> bool:
    return tok.kind == BUTNOT or tok.is_word("or", "and")


def _starts_operand(tok: Token) -> bool:
    return _is_name(tok) or tok.is_punct("(")


def _is_param_name(tok: Token) -> bool:
    return (
        tok.kind == WORD and IDENTIFIER_RE.match(tok.text) is not None and tok.text not in PARAM_NAME_EXCLUDED
    )


class Parser:
    """Recursive descent with the error recovery of ANTLR's default strategy, as OpenFGA's parser reports it.

    On an unexpected token: if the token after it is one that could come here, the token is reported as
    ``extraneous input`` and dropped (single-token deletion); if the current token could follow the expected
    one (a ``:`` or a space), ``missing X at 'y'`` is reported and parsing goes on (single-token insertion);
    otherwise ``mismatched input`` (or ``no viable alternative`` where ANTLR's prediction fails) is reported
    and parsing stops, since OpenFGA's parser reports nothing after one. As in ANTLR, after one error no other
    is reported until a token has been matched again.
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

    def report(self, msg: str, tok: Token | None = None) -> None:
        if self.recovering:
            return
        self.recovering = True
        self.errors.append(self._detail(msg, tok or self.tok))

    def fatal(self, msg: str, tok: Token | None = None) -> _Fail:
        self.report(msg, tok)
        return _Fail()

    def mismatched(self, expecting: str, tok: Token | None = None) -> _Fail:
        tok = tok or self.tok
        return self.fatal(f"mismatched input '{tok.display}' expecting {expecting}", tok)

    def no_viable(self, start: int, tok: Token | None = None) -> _Fail:
        """ANTLR's message quotes the input from where its prediction started through the offending token."""
        offending = tok or self.tok
        end = self.i
        while end + 1 < len(self.toks) and self.toks[end] is not offending:
            end += 1
        text = "".join(t.display for t in self.toks[start : end + 1])
        return self.fatal(f"no viable alternative at input '{text}'", offending)

    def extraneous(self, expecting: str) -> None:
        self.report(f"extraneous input '{self.tok.display}' expecting {expecting}")
        self.drop()

    def expect(
        self,
        ok: Callable[[Token], bool],
        expecting: str,
        follows: Callable[[Token], bool] | None = None,
        optional_ws: bool = False,
    ) -> Token:
        """Match a token ``ok`` accepts, with ANTLR's single-token deletion and insertion.

        ``optional_ws``: spaces may come first (the expected set then includes WHITESPACE)."""
        if optional_ws:
            self.skip_ws()
        if ok(self.tok):
            return self.advance()
        if ok(self.peek()) or (optional_ws and self.peek().kind == WS):
            self.extraneous(expecting)
            if optional_ws:
                self.skip_ws()
            if ok(self.tok):
                return self.advance()
            rest = expecting.replace(", WHITESPACE", "").replace("WHITESPACE, ", "")
            if rest.startswith("{") and "," not in rest:
                rest = rest[1:-1]
            raise self.mismatched(rest)
        if follows is not None and follows(self.tok):
            self.report(f"missing {expecting} at '{self.tok.display}'")
            return Token(WS, "", self.tok.start, self.tok.start, self.tok.line, self.tok.column)
        raise self.mismatched(expecting)

    def expect_ws(self, follows: Callable[[Token], bool] | None = None) -> None:
        self.expect(lambda t: t.kind == WS, "WHITESPACE", follows)

    def name(self) -> Name:
        tok = self.expect(_is_name, NAME_EXPECTED)
        return Name(tok.text, self._span(tok))

    # -- file ----------------------------------------------------------------------------------------------
    def _with_lexer_errors(self) -> list[ErrorDetail]:
        """Parser errors with the lexer's "token recognition error"s merged in by position."""
        lexed = []
        for offset, text in self.lexer.bad_chars:
            line, col = self.lexer.position(offset)
            lexed.append(
                ErrorDetail(
                    f"token recognition error at: '{text}'",
                    (line, line),
                    (col, col + len(text)),
                    symbol=text,
                    file=self.file,
                )
            )
        if not lexed:
            return self.errors
        merged: list[ErrorDetail] = []
        pending = sorted(lexed, key=lambda e: (e.line or (0, 0), e.column or (0, 0)))
        for err in self.errors:
            while pending and (pending[0].line, pending[0].column) < (err.line, err.column):
                merged.append(pending.pop(0))
            merged.append(err)
        return merged + pending

    def parse(self) -> ModelFile:
        try:
            model = self._file()
        except _Fail:
            raise DSLSyntaxError(self._with_lexer_errors()) from None
        except RecursionError:
            # Thousands of nested parentheses: refuse rather than crash.
            tok = self.tok
            detail = self._detail("the relation definition nests too deeply", tok)
            raise DSLSyntaxError([*self.errors, detail]) from None
        if self.errors or self.lexer.bad_chars:
            raise DSLSyntaxError(self._with_lexer_errors())
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
                raise self.mismatched(sets[stage][1])
            raise self.mismatched("{'#', 'module', 'model'}")

    def _file(self) -> ModelFile:
        if not self.lexer.src:
            # OpenFGA turns an empty text into an empty model (which validation then refuses).
            return ModelFile(None, None, None, [], [])
        self._file_start()
        if not self.tok.is_word("model", "module"):
            raise self.mismatched("{'#', 'module', 'model'}")
        schema_version: str | None = None
        schema_span: Span | None = None
        module: Name | None = None
        if self.tok.is_word("model"):
            self.advance()
            self.skip_ws()  # spaces (tabs: trailing spaces are gone) may end these header lines
            self.expect(lambda t: t.kind == NL, "NEWLINE")
            self.skip_ws()
            self.expect(lambda t: t.is_word("schema"), "'schema'")
            self.expect_ws()
            version = self.expect(
                lambda t: t.kind == WORD and SCHEMA_VERSION_RE.match(t.text) is not None, "SCHEMA_VERSION"
            )
            schema_version, schema_span = version.text, self._span(version)
            self.skip_ws()
            if self.tok.kind not in (NL, EOF):
                if self.peek().kind in (NL, EOF):
                    self.extraneous("{<EOF>, NEWLINE}")
                else:
                    raise self.no_viable(self.i)
        else:
            self.advance()
            self.expect_ws()
            module = self.name()
            self.skip_ws()
        types: list[TypeDef] = []
        conditions: list[ConditionDef] = []
        extended: set[str] = set()
        previous = "header"
        while True:
            if self.tok.kind == EOF:
                break
            if self.tok.kind != NL:
                if self.peek().kind in (NL, EOF):
                    self.extraneous("{<EOF>, NEWLINE}")
                    previous = "broken"
                    continue
                raise self.mismatched("{<EOF>, NEWLINE}")
            newline = self.i
            self.advance()
            self.skip_ws()
            if self.tok.kind == EOF:
                break
            if previous == "broken":
                # After a token was dropped at the end of a line, ANTLR has left the rule that could continue
                # here: a type that follows is no viable alternative, a condition is past the end.
                if self.tok.is_word("condition"):
                    raise self.mismatched("<EOF>")
                raise self.no_viable(newline)
            if self.tok.is_word("type", "extend") and conditions:
                # Conditions come after every type: past the first one only conditions may follow.
                raise self.mismatched("<EOF>")
            if self.tok.is_word("type", "extend"):
                typedef = self._type(module is not None)
                previous = "broken" if typedef.broken else "type"
                if typedef.extend:
                    if typedef.name.text in extended:
                        self.errors.append(
                            self._at(f"'{typedef.name.text}' is already extended in file.", typedef.name)
                        )
                    extended.add(typedef.name.text)
                types.append(typedef)
            elif self.tok.is_word("condition"):
                cond = self._condition()
                previous = "condition"
                if any(c.name.text == cond.name.text for c in conditions):
                    self.errors.append(
                        self._at(f"condition '{cond.name.text}' is already defined in the model", cond.name)
                    )
                conditions.append(cond)
            elif previous == "condition":
                raise self.mismatched("<EOF>")
            else:
                raise self.no_viable(newline)
        return ModelFile(schema_version, schema_span, module, types, conditions)

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
            self.expect(lambda t: t.is_word("type"), "'type'")
        else:
            self.advance()
        self.expect_ws(follows=_is_name)
        name = self.name()
        if extend and not in_module:
            self.errors.append(self._at("extend can only be used in a modular model", name))
        typedef = TypeDef(name, [], extend=extend)
        if self.tok.kind not in (NL, EOF):
            if self.peek().kind in (NL, EOF):
                self.extraneous("{<EOF>, NEWLINE}")
                typedef.broken = True
                return typedef
            raise self.no_viable(self.i)
        if self.tok.kind == NL and self._after_newline().is_word("relations"):
            start = self.i
            self.advance()
            self.skip_ws()
            self.advance()
            typedef.has_relations_block = True
            self.skip_ws()
            if self.tok.kind not in (NL, EOF) and self.peek().kind == NL:
                self.extraneous("NEWLINE")
            if self.tok.kind == EOF:
                raise self.mismatched("NEWLINE")
            if not (self.tok.kind == NL and self._after_newline().is_word("define")):
                if self.tok.kind == NL:
                    start = self.i
                    self.advance()
                    self.skip_ws()
                raise self.no_viable(start)
            while self.tok.kind == NL and self._after_newline().is_word("define"):
                if typedef.broken:
                    start = self.i
                    self.advance()
                    self.skip_ws()
                    raise self.no_viable(start)
                self.advance()
                self.skip_ws()
                self.advance()
                rel = self._define()
                if any(r.name.text == rel.name.text for r in typedef.relations):
                    self.errors.append(
                        self._at(f"'{rel.name.text}' is already defined in '{name.text}'", rel.name)
                    )
                typedef.relations.append(rel)
                if rel.broken:
                    typedef.broken = True
        return typedef

    def _after_newline(self) -> Token:
        k = 1
        while self.peek(k).kind == WS:
            k += 1
        return self.peek(k)

    def _define(self) -> RelationDef:
        errors_before = len(self.errors)
        self.expect_ws(follows=_is_name)
        name = self.name()
        ws = self.skip_ws()
        colon_follows = lambda t: t.kind == WS or _starts_operand(t) or t.is_punct("[")  # noqa: E731
        self.expect(lambda t: t.is_punct(":"), "':'" if ws else "{':', WHITESPACE}", colon_follows)
        ws = self.skip_ws()
        restrictions: list[TypeRestriction] = []
        rewrite = self._expr(restrictions, leftmost=True, ws_before=ws)
        rel = RelationDef(name, rewrite, restrictions)
        tok = self.tok
        if tok.kind in (NL, EOF):
            return rel
        # What ANTLR reports here depends on how it got here: after an operator of another kind (which needs
        # parentheses) or once an error was recovered from in this definition, the line end is "mismatched";
        # otherwise its prediction fails and reports "no viable alternative".
        recovered = len(self.errors) > errors_before
        if tok.kind == WS and self.peek().kind in (NL, EOF):
            self.extraneous("{<EOF>, NEWLINE}")
            rel.broken = True
            return rel
        if tok.kind == WS:
            # As observed with `fga`: a space before an operator of another kind is "mismatched", a space
            # before anything else is "no viable alternative" - and the other way round once an error was
            # recovered from in this definition.
            if _is_operator(self.peek()) != recovered:
                raise self.mismatched("{<EOF>, NEWLINE}")
            raise self.no_viable(self.i)
        if self.peek().kind in (NL, EOF):
            self.extraneous("{<EOF>, NEWLINE}")
            rel.broken = True
            return rel
        if recovered:
            raise self.mismatched("{<EOF>, NEWLINE}")
        raise self.no_viable(self.i)

    # -- relation definitions ------------------------------------------------------------------------------
    def _op_after_ws(self) -> Token | None:
        if self.tok.kind == WS and _is_operator(self.peek()):
            return self.peek()
        return None

    @staticmethod
    def _op_kind(tok: Token) -> str:
        if tok.kind == BUTNOT:
            return "difference"
        return "union" if tok.text == "or" else "intersection"

    def _expr(self, restrictions: list[TypeRestriction], leftmost: bool, ws_before: bool) -> Rewrite:
        first = self._operand(restrictions, leftmost, ws_before)
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
            self.expect_ws(follows=lambda t: _starts_operand(t) or t.is_punct("["))
            children.append(self._operand(restrictions, False, True))
        start = first.span
        end = children[-1].span
        return Rewrite(op, Span(start.line, start.start, end.end, self.file), children=children)

    def _operand(self, restrictions: list[TypeRestriction], leftmost: bool, ws_before: bool) -> Rewrite:
        expecting = "{" + ("'[', " if leftmost else "") + "'(', " + ("" if ws_before else "WHITESPACE, ")
        expecting += NAME_SET + "}"

        def can_start(t: Token) -> bool:
            return _starts_operand(t) or (leftmost and t.is_punct("[")) or (not ws_before and t.kind == WS)

        while not can_start(self.tok):
            if self.tok.is_punct("[") or can_start(self.peek()):
                # Includes a direct assignment that is not the first operand: only the first may be one.
                self.extraneous(expecting)
                if self.skip_ws():
                    ws_before = True
                continue
            raise self.mismatched(expecting)
        if self.tok.kind == WS:
            self.skip_ws()
            ws_before = True
            return self._operand(restrictions, leftmost, ws_before)
        tok = self.tok
        if tok.is_punct("["):
            return self._direct(restrictions)
        if tok.is_punct("("):
            self.advance()
            ws = self.skip_ws()
            inner = self._expr(restrictions, leftmost, ws_before=ws)
            while True:
                # Whatever stands between the group and its `)` is dropped as ANTLR's loop recovery does:
                # the first token of each run is reported as extraneous, the rest of the run (up to a space
                # or the `)`) goes silently.
                self.skip_ws()
                if self.tok.is_punct(")"):
                    self.advance()
                    return inner
                if self.tok.kind in (NL, EOF):
                    raise self.mismatched("{')', WHITESPACE}")
                self.extraneous("{')', WHITESPACE}")
                while self.tok.kind not in (WS, NL, EOF) and not self.tok.is_punct(")"):
                    self.drop()
        rel = self.name()
        if self.tok.kind == WS and self.peek().is_word("from"):
            self.advance()
            self.advance()
            self.expect_ws(follows=_is_name)
            tupleset = self.name()
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
        after_comma = False
        while True:
            restriction = self._restriction(ws, nl)
            if restriction is not None:
                restrictions.append(restriction)
            while True:
                ws, nl = self._bracket_gap()
                if self.tok.is_punct(",") or self.tok.is_punct("]"):
                    break
                nxt = self.peek()
                expecting = "{',', " + ("" if ws else "WHITESPACE, ") + "']'}"
                if nxt.is_punct(",") or nxt.is_punct("]") or (not ws and nxt.kind == WS):
                    self.extraneous(expecting)
                    continue
                if after_comma and ws and self.tok.kind not in (NL, EOF):
                    # Past the first restriction ANTLR is in the `(',' restriction)*` loop, whose recovery
                    # reports the token and skips to the next `,` or `]`.
                    self.extraneous(expecting)
                    while self.tok.kind not in (NL, EOF) and not (
                        self.tok.is_punct(",") or self.tok.is_punct("]")
                    ):
                        self.drop()
                    continue
                raise self.mismatched(expecting)
            if self.tok.is_punct(","):
                self.advance()
                after_comma = True
                ws, nl = self._bracket_gap()
                continue
            close = self.advance()
            break
        return Rewrite(
            "this",
            Span(open_tok.line, open_tok.column, close.column + 1, self.file),
            restrictions=list(restrictions),
        )

    def _restriction_no_viable(self, start: int) -> None:
        """`type:x` or `type#]`: report it, then resynchronise as ANTLR does, on the next `,`, `]` or space
        (the list of restrictions goes on from there)."""
        self.no_viable(start)
        while self.tok.kind not in (WS, NL, EOF) and not (self.tok.is_punct(",") or self.tok.is_punct("]")):
            self.drop()
        return None

    def _restriction(self, ws: bool, nl: bool) -> TypeRestriction | None:
        while not _is_name(self.tok):
            # After a line end (which carries the next line's indentation) only a name may come.
            expecting = (
                "{" + ("" if ws or nl else "WHITESPACE, ") + NAME_SET + ("" if nl else ", NEWLINE") + "}"
            )
            nxt = self.peek()
            if _is_name(nxt) or nxt.kind in ((WS,) if not (ws or nl) else ()) + ((NL,) if not nl else ()):
                self.extraneous(expecting)
                more_ws, more_nl = self._bracket_gap()
                ws = more_ws if more_nl else (ws or more_ws)
                nl = nl or more_nl
                continue
            # Mismatched: ANTLR reports it and drops the token, then resumes after the restriction.
            self.report(f"mismatched input '{self.tok.display}' expecting {expecting}")
            self.drop()
            return None
        type_index = self.i
        type_tok = self.tok
        type_name = self.name()
        restriction = TypeRestriction(type_name)
        end = type_name.span.end
        if self.tok.is_punct(":"):
            self.advance()
            if not self.tok.is_punct("*"):
                self._restriction_no_viable(type_index)
                return None
            end = self.advance().column + 1
            restriction.wildcard = True
        elif self.tok.is_punct("#"):
            self.advance()
            if not _is_name(self.tok):
                self._restriction_no_viable(type_index)
                return None
            restriction.relation = self.name()
            end = restriction.relation.span.end
        restriction.span = Span(type_tok.line, type_tok.column, end, self.file)
        if self.tok.kind == WS and self.peek().is_word("with"):
            self.advance()
            self.advance()
            self.expect_ws(follows=_is_param_name)
            cond = self.expect(_is_param_name, "{IDENTIFIER, '$expression'}")
            restriction.condition = Name(cond.text, self._span(cond))
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
        self.expect_ws(follows=_is_param_name)
        # Condition names are plain identifiers (keywords are tokens of their own there).
        name_tok = self.expect(_is_param_name, "IDENTIFIER")
        name = Name(name_tok.text, self._span(name_tok))
        ws = self.skip_ws()
        try:
            self.expect(lambda t: t.is_punct("("), "'('" if ws else "{'(', WHITESPACE}", optional_ws=not ws)
        except _Fail:
            self._body_start_error()
            raise
        ws = self.skip_ws()
        params: list[ConditionParam] = []
        while True:
            expecting = "{" + ("" if ws else "WHITESPACE, ") + "IDENTIFIER, NEWLINE}"
            if not _is_param_name(self.tok):
                if _is_param_name(self.peek()) or (not ws and self.peek().kind == WS):
                    self.extraneous(expecting)
                    ws = self.skip_ws() or ws
                    if not _is_param_name(self.tok):
                        raise self.mismatched("{IDENTIFIER, NEWLINE}")
                else:
                    self.report(f"mismatched input '{self.tok.display}' expecting {expecting}")
                    if not params:
                        self._body_start_error()
                    raise _Fail()
            param = self._param()
            if any(p.name.text == param.name.text for p in params):
                self.errors.append(
                    self._at(
                        f"parameter '{param.name.text}' is already defined in the condition '{name.text}'",
                        param.name,
                    )
                )
            params.append(param)
            ws = self.skip_ws()
            after = "{',', ')', " + ("" if ws else "WHITESPACE, ") + "NEWLINE}"
            try:
                tok = self.expect(lambda t: t.is_punct(",") or t.is_punct(")"), after)
            except _Fail:
                if len(params) == 1:
                    self._body_start_error()
                raise
            if tok.is_punct(","):
                ws = self.skip_ws()
                continue
            break
        ws = self.skip_ws()
        body = self.expect(
            lambda t: t.kind == CEL, "{" + ("" if ws else "WHITESPACE, ") + "'{'}", optional_ws=not ws
        )
        return ConditionDef(name, params, condition_expression(body.text))

    def _param(self) -> ConditionParam:
        tok = self.advance()
        name = Name(tok.text, self._span(tok))
        ws = self.skip_ws()
        self.expect(
            lambda t: t.is_punct(":"),
            "':'" if ws else "{':', WHITESPACE}",
            lambda t: t.kind == WS or t.is_word(*PARAM_TYPES, *PARAM_CONTAINERS),
        )
        ws = self.skip_ws()
        kind = self.expect(
            lambda t: t.is_word(*PARAM_TYPES, *PARAM_CONTAINERS),
            "{" + ("" if ws else "WHITESPACE, ") + "CONDITION_PARAM_CONTAINER, CONDITION_PARAM_TYPE}",
            optional_ws=not ws,
        )
        if kind.text in PARAM_CONTAINERS:
            self.expect(lambda t: t.is_punct("<"), "'<'")
            inner = self.expect(
                lambda t: t.is_word(*PARAM_TYPES), "CONDITION_PARAM_TYPE", lambda t: t.is_punct(">")
            )
            self.expect(lambda t: t.is_punct(">"), "'>'")
            return ConditionParam(name, kind.text, inner.text or PARAM_TYPES[0])
        return ConditionParam(name, kind.text)


def condition_expression(body: str) -> str:
    """The expression OpenFGA stores for a condition body: comments dropped, leading space dropped, and the
    line ends before the closing brace dropped - but not spaces: `{ x < 1 }` is stored as ``"x < 1 "`` and
    an indented closing brace keeps its indentation, as `fga model transform` shows."""
    return strip_cel_comments(body).lstrip().rstrip("\n")


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
        if ch == "#" and i > 0 and text[i - 1] in " \t\r\n":
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
