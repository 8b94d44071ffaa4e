"""The line of every table and key of a TOML text, which tomllib does not report.

tomllib gives a line and column for syntax errors only. To say on which line a semantic error
sits (an unknown key, a bad duration) we scan the text once more, after tomllib accepted it:
headers, keys (dotted and quoted ones too), and the keys of inline tables, skipping over string
and array values so that text inside a multi-line string is never taken for a key.
"""

from __future__ import annotations

Path = tuple[str, ...]

_BARE_KEY = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
_SCALAR_END = frozenset(",]}\n#")


def key_lines(text: str) -> dict[Path, int]:
    """Line (1-based) where each table, key, and prefix of a dotted key first appears."""
    return _Scanner(text).scan()


def line_of(lines: dict[Path, int], path: Path) -> int | None:
    """The line of `path`, or of its longest prefix that has one (an enclosing table)."""
    for end in range(len(path), 0, -1):
        if path[:end] in lines:
            return lines[path[:end]]
    return None


class _Scanner:
    """A structural pass over text that tomllib has already accepted (so it is valid TOML)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.line = 1
        self.found: dict[Path, int] = {}

    def scan(self) -> dict[Path, int]:
        table: Path = ()
        while True:
            self._skip(newlines=True)
            if self.pos >= len(self.text):
                return self.found
            if self._char() == "[":
                brackets = 2 if self.text.startswith("[[", self.pos) else 1
                self._advance(brackets)
                line = self.line
                table = self._key_path()
                self._advance(brackets)
                self._record(table, line)
            else:
                line = self.line
                path = table + self._key_path()
                self._advance(1)  # "="
                self._record(path, line, prefixes_from=len(table) + 1)
                self._value(path)

    # -- pieces ------------------------------------------------------------------------------

    def _record(self, path: Path, line: int, prefixes_from: int | None = None) -> None:
        start = len(path) if prefixes_from is None else prefixes_from
        for end in range(start, len(path) + 1):
            self.found.setdefault(path[:end], line)

    def _key_path(self) -> Path:
        parts = []
        while True:
            self._skip(newlines=False)
            char = self._char()
            if char == '"':
                parts.append(self._basic_string())
            elif char == "'":
                parts.append(self._literal_string())
            else:
                start = self.pos
                while self.pos < len(self.text) and self.text[self.pos] in _BARE_KEY:
                    self.pos += 1
                parts.append(self.text[start:self.pos])
            self._skip(newlines=False)
            if self._char() != ".":
                return tuple(parts)
            self._advance(1)

    def _value(self, path: Path | None) -> None:
        self._skip(newlines=False)
        char = self._char()
        if self.text.startswith('"""', self.pos) or self.text.startswith("'''", self.pos):
            self._multiline_string()
        elif char == '"':
            self._basic_string()
        elif char == "'":
            self._literal_string()
        elif char == "[":
            self._advance(1)
            while True:
                self._skip(newlines=True)
                if self._char() == "]":
                    self._advance(1)
                    return
                self._value(None)  # keys inside arrays of inline tables are not config keys
                self._skip(newlines=True)
                if self._char() == ",":
                    self._advance(1)
        elif char == "{":
            self._advance(1)
            while True:
                self._skip(newlines=False)
                if self._char() == "}":
                    self._advance(1)
                    return
                line = self.line
                inner = self._key_path()
                self._advance(1)  # "="
                if path is not None:
                    self._record(path + inner, line, prefixes_from=len(path) + 1)
                self._value(None if path is None else path + inner)
                self._skip(newlines=False)
                if self._char() == ",":
                    self._advance(1)
        else:
            while self.pos < len(self.text) and self.text[self.pos] not in _SCALAR_END:
                self.pos += 1

    def _basic_string(self) -> str:
        self._advance(1)
        start = self.pos
        while self.text[self.pos] != '"':
            self.pos += 2 if self.text[self.pos] == "\\" else 1
        value = self.text[start:self.pos]
        self._advance(1)
        return value.encode().decode("unicode_escape") if "\\" in value else value

    def _literal_string(self) -> str:
        self._advance(1)
        end = self.text.index("'", self.pos)
        value = self.text[self.pos:end]
        self.pos = end + 1
        return value

    def _multiline_string(self) -> None:
        quote = self.text[self.pos:self.pos + 3]
        self._advance(3)
        while not self.text.startswith(quote, self.pos):
            self._advance(2 if quote == '"""' and self.text[self.pos] == "\\" else 1)
        self._advance(3)
        while self._char() == quote[0]:  # up to two quotes may close the content
            self._advance(1)

    # -- characters --------------------------------------------------------------------------

    def _char(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def _advance(self, count: int) -> None:
        end = min(self.pos + count, len(self.text))
        self.line += self.text.count("\n", self.pos, end)
        self.pos = end

    def _skip(self, newlines: bool) -> None:
        """Skip spaces and comments, and line breaks too when `newlines`."""
        while self.pos < len(self.text):
            char = self.text[self.pos]
            if char in " \t\r" or (newlines and char == "\n"):
                self._advance(1)
            elif char == "#":
                end = self.text.find("\n", self.pos)
                self.pos = len(self.text) if end < 0 else end
            else:
                return
