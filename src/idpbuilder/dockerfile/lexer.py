"""BuildKit's Dockerfile shell lexer: quote removal, escapes, ``$VAR`` / ``${VAR...}`` expansion, word splitting.

A port of the semantics of moby/buildkit ``frontend/dockerfile/shell/lex.go`` (not its code). Expansion runs at
dispatch time against the stage's current environment; nothing here touches the filesystem or a real shell.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Mapping
from functools import lru_cache

from idpbuilder._records import dataclass, field
from idpbuilder.dockerfile._pattern import Pattern, PatternError, compile_pattern
from idpbuilder.dockerfile._pattern import replace_all as _replace_all
from idpbuilder.errors import BuildError

__all__ = ["ExpansionResult", "ShellLex", "go_is_space", "go_quote"]

# Go's unicode.IsSpace: the Unicode White_Space property.
_GO_SPACES = frozenset(
    "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000"
)
_SPECIAL_PARAMS = frozenset("@*#?-$!0")
GO_SPACE_CLASS = "".join(sorted(_GO_SPACES))  # for regular expression classes: re.escape it
_SP = re.escape(GO_SPACE_CLASS)
_RE_RUNS = re.compile(f"[{_SP}]+|[^{_SP}]+")
MAX_EXPANSION = 16 << 20  # characters one word may expand to (ENV A=$A$A doubled 30 times is 8 GiB)
MAX_NESTING = 100  # ${A:-${B:-...}} levels


@lru_cache(maxsize=16)
def _plain_run(escape: str, stop: str, quotes: bool) -> re.Pattern[str]:
    """A run of characters ``process_stop_on`` copies as they are (no $, escape, stop, quote or space)."""
    special = "$" + escape + stop + ("'\"" if quotes else "")
    return re.compile(f"[^{_SP}{re.escape(special)}]+")


@lru_cache(maxsize=4)
def _dq_run(escape: str) -> re.Pattern[str]:
    return re.compile(f"[^{re.escape(chr(34) + '$' + escape)}]+")


def go_is_space(ch: str) -> bool:
    """True if ``ch`` is white space by Go's ``unicode.IsSpace`` (which differs from ``str.isspace``)."""
    return ch in _GO_SPACES


def _is_digit(ch: str) -> bool:
    return unicodedata.category(ch) == "Nd"


def _is_letter(ch: str) -> bool:
    return unicodedata.category(ch).startswith("L")


class _LexError(Exception):
    """Internal: a lexing failure, wrapped into a BuildError at the public boundary."""


@dataclass
class ExpansionResult:
    """What one expansion produced: the word, its split words, and the variable names it looked up."""

    result: str
    words: list[str]
    matched: set[str] = field(default_factory=set)
    unmatched: set[str] = field(default_factory=set)


class _Words:
    """Word-splitting accumulator (BuildKit's wordsStruct), in time linear in what it is given."""

    def __init__(self) -> None:
        self.buf: list[str] = []
        self.words: list[str] = []
        self.in_word = False

    def add_char(self, ch: str) -> None:
        if go_is_space(ch):
            if self.in_word and self.buf:
                self.words.append("".join(self.buf))
                self.buf = []
                self.in_word = False
        else:
            self.add_raw_char(ch)

    def add_raw_char(self, ch: str) -> None:
        self.buf.append(ch)
        self.in_word = True

    def add_string(self, s: str) -> None:
        for m in _RE_RUNS.finditer(s):
            run = m.group()
            if go_is_space(run[0]):
                self.add_char(run[0])  # one space ends a word; more do nothing
            else:
                self.add_raw_string(run)

    def add_raw_string(self, s: str) -> None:
        if s:
            self.buf.append(s)
        self.in_word = True

    def get_words(self) -> list[str]:
        if self.buf:
            self.words.append("".join(self.buf))
            self.buf = []
            self.in_word = False
        return self.words


class _ShellWord:
    """One expansion run over one input string."""

    def __init__(self, lex: ShellLex, text: str, env: Mapping[str, str]) -> None:
        self.lex = lex
        self.text = text
        self.pos = 0
        self.env = env
        self.raw_escapes = lex.raw_escapes
        self.matched: set[str] = set()
        self.unmatched: set[str] = set()
        self.produced = 0
        self.depth = 0

    def _count(self, s: str) -> None:
        self.produced += len(s)
        if self.produced > MAX_EXPANSION:
            raise _LexError(f"the expansion is longer than {MAX_EXPANSION} characters")

    # scanner primitives ("" means EOF)
    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def next(self) -> str:
        if self.pos >= len(self.text):
            return ""
        ch = self.text[self.pos]
        self.pos += 1
        return ch

    def get_env(self, name: str) -> tuple[str, bool]:
        if name in self.env:
            self.matched.add(name)
            return self.env[name], True
        self.unmatched.add(name)
        return "", False

    def process_stop_on(self, stop: str, raw_escapes: bool) -> tuple[str, list[str]]:
        result: list[str] = []
        words = _Words()
        saved = self.raw_escapes
        self.raw_escapes = raw_escapes
        plain = _plain_run(self.lex.escape, stop, not self.lex.skip_process_quotes)
        text = self.text
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise _LexError(f"substitutions nested more than {MAX_NESTING} levels deep")
        try:
            while self.pos < len(text):
                m = plain.match(text, self.pos)
                if m is not None:
                    run = m.group()
                    self.pos = m.end()
                    result.append(run)
                    words.add_raw_string(run)
                    continue
                ch = self.peek()
                if stop != "" and ch == stop:
                    self.next()
                    return "".join(result), words.get_words()
                if ch == "$":
                    tmp = self.process_dollar()
                    self._count(tmp)
                    result.append(tmp)
                    words.add_string(tmp)
                    continue
                if not self.lex.skip_process_quotes and ch in ("'", '"'):
                    tmp = self.process_single_quote() if ch == "'" else self.process_double_quote()
                    self._count(tmp)
                    result.append(tmp)
                    words.add_raw_string(tmp)
                    continue
                ch = self.next()
                if ch == self.lex.escape:
                    if self.raw_escapes:
                        words.add_raw_char(ch)
                        result.append(ch)
                    ch = self.next()
                    if ch == "":
                        break
                    words.add_raw_char(ch)
                else:
                    words.add_char(ch)
                result.append(ch)
            if stop != "":
                raise _LexError(f"unexpected end of statement while looking for matching {stop}")
            return "".join(result), words.get_words()
        finally:
            self.raw_escapes = saved
            self.depth -= 1

    def process_single_quote(self) -> str:
        # everything up to the next ' is literal; a ' cannot be escaped inside
        self.next()
        end = self.text.find("'", self.pos)
        if end < 0:
            self.pos = len(self.text)
            raise _LexError("unexpected end of statement while looking for matching single-quote")
        body = self.text[self.pos : end]
        self.pos = end + 1
        return f"'{body}'" if self.lex.raw_quotes else body

    def process_double_quote(self) -> str:
        # literal except $ expansion and escapes of " $ and the escape token itself
        out: list[str] = []
        ch = self.next()
        if self.lex.raw_quotes:
            out.append(ch)
        plain = _dq_run(self.lex.escape)
        while True:
            m = plain.match(self.text, self.pos)
            if m is not None:
                out.append(m.group())
                self.pos = m.end()
            peek = self.peek()
            if peek == "":
                raise _LexError("unexpected end of statement while looking for matching double-quote")
            if peek == '"':
                ch = self.next()
                if self.lex.raw_quotes:
                    out.append(ch)
                return "".join(out)
            if peek == "$":
                tmp = self.process_dollar()
                self._count(tmp)
                out.append(tmp)
                continue
            ch = self.next()
            if ch == self.lex.escape:
                if self.raw_escapes:
                    out.append(ch)
                nxt = self.peek()
                if nxt == "":
                    continue
                if nxt in ('"', "$", self.lex.escape):
                    ch = self.next()
            out.append(ch)

    def process_name(self) -> str:
        name: list[str] = []
        while self.peek() != "":
            ch = self.peek()
            if not name and _is_digit(ch):
                while self.peek() != "" and _is_digit(self.peek()):
                    name.append(self.next())
                return "".join(name)
            if not name and ch in _SPECIAL_PARAMS:
                return self.next()
            if not (_is_letter(ch) or _is_digit(ch) or ch == "_"):
                break
            name.append(self.next())
        return "".join(name)

    def process_dollar(self) -> str:
        self.next()  # the $
        if self.peek() != "{":
            name = self.process_name()
            if name == "":
                return "$"
            value, found = self.get_env(name)
            if not found and self.lex.skip_unset_env:
                return "$" + name
            return value

        self.next()  # the {
        peek = self.peek()
        if peek == "":
            raise _LexError("syntax error: missing '}'")
        if peek in ("{", "}", ":"):
            raise _LexError("syntax error: bad substitution")
        name = self.process_name()
        ch = self.next()
        if ch == "":
            raise _LexError("syntax error: missing '}'")
        chs = ch
        null_is_unset = False

        if ch == "}":
            value, found = self.get_env(name)
            if not found and self.lex.skip_unset_env:
                return "${" + name + "}"
            return value
        if ch == ":":
            null_is_unset = True
            ch = self.next()
            chs += ch
        if null_is_unset or ch in ("+", "-", "?", "#", "%"):
            raw = ch in ("#", "%")
            if null_is_unset and raw:
                raise _LexError(f"unsupported modifier ({chs}) in substitution")
            try:
                word, _ = self.process_stop_on("}", raw)
            except _LexError:
                if self.peek() == "":
                    raise _LexError("syntax error: missing '}'") from None
                raise
            value, found = self.get_env(name)
            if self.lex.skip_unset_env and not found:
                return "${" + name + chs + word + "}"
            if ch == "-":
                if not found or (null_is_unset and value == ""):
                    return word
                return value
            if ch == "+":
                if not found or (null_is_unset and value == ""):
                    return ""
                return word
            if ch == "?":
                if not found:
                    raise _LexError(f"{name}: {word or 'is not allowed to be unset'}")
                if null_is_unset and value == "":
                    raise _LexError(f"{name}: {word or 'is not allowed to be empty'}")
                return value
            if ch not in ("#", "%"):
                raise _LexError(f"unsupported modifier ({chs}) in substitution")
            # % and #: shortest match, %% and ## longest
            greedy = False
            if word and word[0] == ch:
                greedy = True
                word = word[1:]
            if ch == "%":
                return _trim_suffix(word, value, greedy)
            return _trim_prefix(word, value, greedy)
        if ch == "/":
            replace_all = self.peek() == "/"
            if replace_all:
                self.next()
            try:
                pattern, _ = self.process_stop_on("/", True)
            except _LexError:
                if self.peek() == "":
                    raise _LexError("syntax error: missing '/' in ${}") from None
                raise
            try:
                replacement, _ = self.process_stop_on("}", True)
            except _LexError:
                if self.peek() == "":
                    raise _LexError("syntax error: missing '}'") from None
                raise
            value, found = self.get_env(name)
            if self.lex.skip_unset_env and not found:
                return "${" + name + "/" + pattern + "/" + replacement + "}"
            pat = _compile(pattern, greedy=True)
            if replace_all:
                return _replace_all(pat, value, _go_template_replacer(replacement))
            m = pat.search(value)
            if m is not None:
                value = value[: m[0]] + replacement + value[m[1] :]
            return value
        raise _LexError(f"unsupported modifier ({chs}) in substitution")


def _compile(pattern: str, *, greedy: bool) -> Pattern:
    try:
        return compile_pattern(pattern, greedy=greedy)
    except PatternError as e:
        raise _LexError(str(e)) from None


def _trim_prefix(pattern: str, value: str, greedy: bool) -> str:
    m = _compile(pattern, greedy=greedy).search(value, anchored=True)
    return value[m[1] :] if m is not None else value


def _reverse_pattern(pattern: str) -> str:
    """Reverse a pattern keeping escapes attached to the character they escape (a\\*c -> c\\*a)."""
    out = [""] * len(pattern)
    last = len(pattern) - 1
    i = 0
    while i <= last:
        tok = pattern[i]
        j = last - i
        if tok == "\\" and i != last:
            out[j - 1] = tok
            out[j] = pattern[i + 1]
            i += 2
        else:
            out[j] = tok
            i += 1
    return "".join(out)


def _trim_suffix(pattern: str, value: str, greedy: bool) -> str:
    # regexes cannot find the shortest rightmost match: reverse both and trim a prefix instead
    return _trim_prefix(_reverse_pattern(pattern), value[::-1], greedy)[::-1]


def _go_template_replacer(template: str) -> Callable[[str], str]:
    """Replacement with Go's Regexp.Expand rules ($$, $0, $name, ${name}), as ReplaceAllString uses."""

    def expand(match: str) -> str:
        out: list[str] = []
        i = 0
        n = len(template)
        while i < n:
            c = template[i]
            if c != "$":
                out.append(c)
                i += 1
                continue
            if i + 1 < n and template[i + 1] == "$":
                out.append("$")
                i += 2
                continue
            j = i + 1
            braced = j < n and template[j] == "{"
            if braced:
                j += 1
            k = j
            while k < n and (template[k].isalnum() or template[k] == "_") and template[k].isascii():
                k += 1
            name = template[j:k]
            if not name or (braced and (k >= n or template[k] != "}")):
                out.append("$")
                i += 1
                continue
            i = k + 1 if braced else k
            if name.isdigit() and int(name) == 0:  # the patterns have no groups: only $0 is set
                out.append(match)
        return "".join(out)

    return expand


class ShellLex:
    """Docker's shell-word lexer: ``process_word`` expands one word, ``process_words`` also splits it."""

    def __init__(self, escape: str = "\\") -> None:
        if escape not in ("\\", "`"):
            raise ValueError(f"invalid escape token {escape!r}")
        self.escape = escape
        self.raw_quotes = False
        self.raw_escapes = False
        self.skip_process_quotes = False
        self.skip_unset_env = False

    def expand(self, word: str, env: Mapping[str, str]) -> ExpansionResult:
        """Run the lexer once: expanded word, split words and the variable names looked up."""
        sw = _ShellWord(self, word, env)
        try:
            result, words = sw.process_stop_on("", sw.raw_escapes)
        except _LexError as e:
            raise BuildError(
                f"failed to process {go_quote(word) if len(word) <= 200 else go_quote(word[:160]) + '…'}: {e}",
                hint="check the quoting and ${...} syntax; ${VAR:?msg} fails when VAR is unset or empty",
            ) from None
        return ExpansionResult(result, words, sw.matched, sw.unmatched)

    def process_word(self, word: str, env: Mapping[str, str]) -> str:
        """Expand variables and remove quotes/escapes in ``word``; spaces between words are kept."""
        return self.expand(word, env).result

    def process_words(self, word: str, env: Mapping[str, str]) -> list[str]:
        """Expand ``word`` and split it into words on unquoted white space (after expansion)."""
        return self.expand(word, env).words

    def used_vars(self, word: str, env: Mapping[str, str]) -> set[str]:
        """Names of the variables ``word`` references, whether set in ``env`` or not."""
        res = self.expand(word, env)
        return res.matched | res.unmatched


def go_quote(s: str) -> str:
    """Quote ``s`` exactly like Go's ``strconv.Quote`` (used by the AST dump and error messages)."""
    out = ['"']
    for ch in s:
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ch == " " or (ch.isprintable() and ch not in _GO_SPACES):
            out.append(ch)
        elif ch in _GO_CONTROL_ESCAPES:
            out.append(_GO_CONTROL_ESCAPES[ch])
        else:
            o = ord(ch)
            if o < 0x20 or o == 0x7F:
                out.append(f"\\x{o:02x}")
            elif o < 0x10000:
                out.append(f"\\u{o:04x}")
            else:
                out.append(f"\\U{o:08x}")
    out.append('"')
    return "".join(out)


_GO_CONTROL_ESCAPES = {
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
}
