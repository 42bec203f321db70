"""Tokenizer for OpenFGA's modeling language (DSL).

The token kinds mirror the ones OpenFGA's error messages name, so that syntax errors can quote tokens the same
way: ``WHITESPACE`` (spaces and tabs inside a line), ``NEWLINE`` (one or more line ends, with the trailing
spaces before them, blank lines and ``#`` comment lines folded in), words (identifiers and keywords; the
parser decides which by context, because OpenFGA lets keywords such as ``model`` or ``type`` be used as
names), punctuation, ``but not`` as one operator token, and the body of a condition (``{ ... }``) as one CEL
token whose text is kept as written.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass

WS = "WHITESPACE"
NL = "NEWLINE"
WORD = "WORD"
PUNCT = "PUNCT"
BUTNOT = "BUTNOT"
CEL = "CEL"
EOF = "EOF"

_NAME_START = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")
_CEL_NUMBER_RE = re.compile(r"0[xX][0-9a-fA-F]+[uU]?|[0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?[uU]?")
_CEL_OPERATORS_2 = {"==", "!=", "<=", ">=", "&&", "||"}
_CEL_OPERATORS_1 = set("<>!+-*/%?:.,[](){}#")  # `#` right after a token is not a comment: OpenFGA keeps it
_SPACES_RE = re.compile(r"[ \t]+")
_WORD_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_\-./]*")
_NUMBER_RE = re.compile(r"[0-9]+(?:\.[0-9]+)?")
_FRACTION_RE = re.compile(r"\.[0-9]+")


@dataclass
class Token:
    kind: str
    text: str
    start: int  # offset of the first character
    end: int  # offset after the last character
    line: int  # 0-based line of the first character
    column: int  # 0-based column of the first character
    shown: str | None = None  # what error messages quote, when it differs from the text

    @property
    def raw(self) -> str:
        """The token's text as OpenFGA reports it in ``metadata.symbol``."""
        if self.kind == EOF:
            return "<EOF>"
        if self.shown is not None:
            return self.shown
        return self.text

    @property
    def display(self) -> str:
        """The token as ANTLR's error messages show it (line ends escaped)."""
        return self.raw.replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")

    @property
    def width(self) -> int:
        return len(self.raw)

    def is_word(self, *words: str) -> bool:
        return self.kind == WORD and (not words or self.text in words)

    def is_punct(self, char: str) -> bool:
        return self.kind == PUNCT and self.text == char


def strip_trailing_whitespace(source: str) -> str:
    """OpenFGA reads the DSL with the spaces at the end of each line removed (so ``module   `` followed by a
    blank line reports the line end at the column right after ``module``)."""
    # Only spaces are removed; a tab at a line end is part of the NEWLINE token that follows.
    return "\n".join(line.rstrip("\r").rstrip(" ") for line in source.split("\n"))


class Lexer:
    def __init__(self, source: str):
        source = strip_trailing_whitespace(source)
        self.src = source
        self.line_starts = [0]
        for i, ch in enumerate(source):
            if ch == "\n":
                self.line_starts.append(i + 1)
        # Characters no token can start with, as (offset, text) in ANTLR's "token recognition error at: ..."
        self.bad_chars: list[tuple[int, str]] = []

    def position(self, offset: int) -> tuple[int, int]:
        line = bisect.bisect_right(self.line_starts, offset) - 1
        return line, offset - self.line_starts[line]

    def _token(self, kind: str, start: int, end: int, text: str | None = None) -> Token:
        line, col = self.position(start)
        return Token(kind, self.src[start:end] if text is None else text, start, end, line, col)

    def _comment_starts(self, i: int) -> bool:
        # `#` opens a comment at the start of a line or after whitespace; elsewhere (`team#member`) it is the
        # userset separator.
        return self.src[i] == "#" and (i == 0 or self.src[i - 1] in " \t\r\n")

    def _skip_line(self, i: int) -> int:
        n = len(self.src)
        while i < n and self.src[i] != "\n":
            i += 1
        return i

    def _newline(self, start: int, i: int) -> tuple[Token | None, int]:
        """One NEWLINE token from ``i`` (a line end or a comment): the line end, the blank and comment lines
        after it and the indentation of the next line, as OpenFGA's NEWLINE token."""
        src, n = self.src, len(self.src)
        if i < n and src[i] == "#":
            i = self._skip_line(i)
        if i >= n:
            return None, n
        count = 0
        indent_start = indent_end = i
        while i < n and src[i] == "\n":
            i += 1
            count += 1
            j = i
            while j < n and src[j] in " \t":
                j += 1
            indent_start, indent_end = i, j
            if j < n and src[j] == "#":
                j = self._skip_line(j)
                i = j
                indent_start = indent_end = j
                continue
            i = j
            if j < n and src[j] == "\n":
                continue
            break
        shown = "\n" * count + src[indent_start:indent_end]
        tok = self._token(NL, start, i)
        tok.shown = shown
        return tok, i

    def tokens(self) -> list[Token]:
        src, n = self.src, len(self.src)
        out: list[Token] = []
        i = 0
        while i < n:
            ch = src[i]
            if ch in " \t":
                m = _SPACES_RE.match(src, i)
                assert m is not None
                j = m.end()
                if j < n and (src[j] == "\n" or self._comment_starts(j)):
                    # Tabs before a line end belong to the NEWLINE token, as in OpenFGA's lexer.
                    tok, i = self._newline(i, j)
                    if tok is not None:
                        out.append(tok)
                    continue
                out.append(self._token(WS, i, j))
                i = j
            elif ch == "\n" or self._comment_starts(i):
                tok, i = self._newline(i, i)
                if tok is not None:
                    out.append(tok)
            elif ch == "{":
                close = self._cel_end(i + 1)
                if close is None:
                    out.append(self._token(PUNCT, i, i + 1))
                    i += 1
                    continue
                out.append(self._token(CEL, i, close + 1, src[i + 1 : close]))
                self._check_cel(i + 1, close)
                i = close + 1
            elif ch.isdigit():
                # Numbers are tokens of their own (a schema version `1.1`, or digits): `1.1type` is the
                # version followed by `type`, and a name cannot start with a digit.
                m = _NUMBER_RE.match(src, i)
                assert m is not None
                out.append(self._token(WORD, i, m.end()))
                i = m.end()
            elif ch == "." and i + 1 < n and src[i + 1].isdigit():
                m = _FRACTION_RE.match(src, i)
                assert m is not None
                out.append(self._token(WORD, i, m.end()))
                i = m.end()
            elif ch not in _NAME_START:
                out.append(self._token(PUNCT, i, i + 1))
                i += 1
            else:
                if src.startswith("but not", i):
                    # `but not` is one token, exactly so spelled, even when a name follows it directly.
                    out.append(self._token(BUTNOT, i, i + 7))
                    i += 7
                    continue
                m = _WORD_RE.match(src, i)
                assert m is not None
                j = m.end()
                out.append(self._token(WORD, i, j))
                i = j
        line, col = self.position(n)
        out.append(Token(EOF, "", n, n, line, col))
        return out

    def _string_end(self, i: int, limit: int) -> int:
        """Offset after the CEL string literal opening at ``i`` (or of the line end an unclosed one hits)."""
        src = self.src
        quote = src[i : i + 3] if src[i : i + 3] in ('"""', "'''") else src[i]
        j = i + len(quote)
        while j < limit and not src.startswith(quote, j):
            if src[j] == "\n" and len(quote) == 1:
                return j
            j += 2 if src[j] == "\\" else 1
        return min(limit, j + len(quote))

    def _check_cel(self, start: int, end: int) -> None:
        """Note what CEL's lexer would not recognise in a condition body (OpenFGA lexes the body as CEL)."""
        src = self.src
        i = start
        while i < end:
            ch = src[i]
            if ch in " \t\r\n":
                i += 1
            elif (ch == "#" and i > start and src[i - 1] in " \t\n") or src.startswith("//", i):
                # A `#` comment (after a space) or CEL's own `//` comment, to the line end.
                while i < end and src[i] != "\n":
                    i += 1
            elif ch in "\"'" or (ch in "rRbB" and i + 1 < end and src[i + 1] in "\"'"):
                q = i + 1 if ch in "rRbB" else i
                j = self._string_end(q, end)
                quote = src[q : q + 3] if src[q : q + 3] in ('"""', "'''") else src[q]
                if not src.startswith(quote, j - len(quote)) or j - len(quote) <= q:
                    # An unclosed string: ANTLR quotes it with the line end that stopped it.
                    self.bad_chars.append((i, src[i : min(end, j + 1)]))
                    j = min(end, j + 1)
                i = j
            elif ch.isalpha() or ch == "_":
                while i < end and (src[i].isalnum() or src[i] == "_"):
                    i += 1
            elif ch.isdigit() or (ch == "." and i + 1 < end and src[i + 1].isdigit()):
                m = _CEL_NUMBER_RE.match(src, i)
                i = m.end() if m else i + 1
            elif src[i : i + 2] in _CEL_OPERATORS_2:
                i += 2
            elif ch in _CEL_OPERATORS_1:
                i += 1
            else:
                # `&`, `|` and `=` only exist doubled: ANTLR's message shows the character after them too.
                width = 2 if ch in "&|=" and i + 1 < end else 1
                self.bad_chars.append((i, src[i : i + width]))
                i += width

    def _cel_end(self, i: int) -> int | None:
        """Offset of the ``}`` closing a condition body opened before ``i``: the first one outside a string
        literal (OpenFGA does not nest braces there, so a CEL map literal cannot be written)."""
        src, n = self.src, len(self.src)
        while i < n:
            ch = src[i]
            if ch in "\"'":
                i = self._string_end(i, n)
                continue
            if ch == "}":
                return i
            i += 1
        return None
