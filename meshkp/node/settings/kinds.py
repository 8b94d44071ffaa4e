"""The value kinds of config keys: how each is read from TOML and from text (environment, --limit).

A kind turns what the operator wrote into the value the config dataclass holds, or raises
ValueError with a message that says what was expected. Ranges and relations are not checked
here: the dataclasses' `validate()` owns them, so the file and the flags share one rule.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from meshkp.errors import ConfigError
from meshkp.net.addr import is_ip_literal, parse_hostport
from meshkp.node.settings.units import (
    DURATION_HINT,
    SIZE_HINT,
    format_duration,
    format_size,
    parse_duration,
    parse_size,
)

_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off")


def _shown(value: object) -> str:
    """A TOML literal of a plain value, as the docs and error messages show it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, tuple | list):
        return "[" + ", ".join(_shown(item) for item in value) + "]"
    return str(value)


class Kind:
    """What one key holds. Subclasses override `from_toml` and `from_text`."""

    label = "a value"

    def from_toml(self, value: object) -> object:
        raise NotImplementedError

    def from_text(self, text: str) -> object:
        return self.from_toml(text)

    def show(self, value: object) -> str:
        """`value` (as the dataclass holds it) written as this key's TOML value."""
        return _shown(value)

    def _wrong(self, value: object) -> ValueError:
        return ValueError(f"expected {self.label}, got {_shown(value)}")


class Boolean(Kind):
    label = "true or false"

    def from_toml(self, value: object) -> object:
        if not isinstance(value, bool):
            raise self._wrong(value)
        return value

    def from_text(self, text: str) -> object:
        word = text.strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
        raise ValueError(f"expected true or false (or 1/0, yes/no, on/off), got {text!r}")


class Integer(Kind):
    label = "an integer"

    def from_toml(self, value: object) -> object:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self._wrong(value)
        return value

    def from_text(self, text: str) -> object:
        try:
            return int(text.strip().replace("_", ""))
        except ValueError:
            raise self._wrong(text) from None


class Number(Kind):
    label = "a number"

    def from_toml(self, value: object) -> object:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self._wrong(value)
        return float(value)

    def from_text(self, text: str) -> object:
        try:
            return float(text.strip())
        except ValueError:
            raise self._wrong(text) from None


class Duration(Kind):
    """Seconds (float), written with a unit."""

    label = DURATION_HINT

    def from_toml(self, value: object) -> object:
        if not isinstance(value, str):
            raise ValueError(f"expected {DURATION_HINT} (a string, in quotes), got {_shown(value)}")
        return parse_duration(value)

    def show(self, value: object) -> str:
        assert isinstance(value, int | float)
        return _shown(format_duration(float(value)))


class Size(Kind):
    """Bytes (int), written as an integer or with a unit."""

    label = SIZE_HINT

    def from_toml(self, value: object) -> object:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str):
            return parse_size(value)
        raise self._wrong(value)

    def show(self, value: object) -> str:
        assert isinstance(value, int)
        spelled = format_size(value)
        return spelled if spelled.isdigit() else _shown(spelled)


class Text(Kind):
    label = "a non-empty string"

    def from_toml(self, value: object) -> object:
        if not isinstance(value, str) or not value.strip():
            raise self._wrong(value)
        return value.strip()


class FilePath(Text):
    label = "a file or directory path (a string)"

    def from_toml(self, value: object) -> object:
        return Path(str(super().from_toml(value))).expanduser()

    def show(self, value: object) -> str:
        return _shown(str(value))


@dataclass(frozen=True)
class Choice(Kind):
    """One of a fixed set of words; `upper` stores it upper-cased (log levels). `why` explains
    a set narrower than the operator may expect."""

    options: Sequence[str]
    upper: bool = False
    why: str = ""

    @property
    def label(self) -> str:  # type: ignore[override]
        return "one of " + ", ".join(_shown(option) for option in self.options)

    def from_toml(self, value: object) -> object:
        if isinstance(value, str):
            for option in self.options:
                if value.strip().lower() == option.lower():
                    return option.upper() if self.upper else option
        wrong = self._wrong(value)
        raise ValueError(f"{wrong}: {self.why}") if self.why else wrong

    def show(self, value: object) -> str:
        return _shown(str(value).lower() if self.upper else value)


class TextList(Kind):
    """A tuple of strings: a TOML array, or comma-separated text in the environment."""

    label = 'an array of strings, like ["10.0.0.2:7946", "10.0.0.3:7946"]'

    def from_toml(self, value: object) -> object:
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            raise self._wrong(value)
        return tuple(v.strip() for v in value)

    def from_text(self, text: str) -> object:
        return tuple(item.strip() for item in text.split(",") if item.strip())


class Address(Kind):
    """"HOST" or "HOST:PORT" (IPv6 in brackets with a port): (host, port or None)."""

    label = 'an address, "HOST" or "HOST:PORT"'

    def __init__(self, ip_only: bool = False) -> None:
        self.ip_only = ip_only
        if ip_only:
            self.label = 'an IP address, "IP" or "IP:PORT"'

    def from_toml(self, value: object) -> object:
        if not isinstance(value, str) or not value.strip():
            raise self._wrong(value)
        try:
            host, port = parse_hostport(value, default_port=0)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        if self.ip_only and not is_ip_literal(host):
            raise ValueError(f"expected an IP address (peers dial it without DNS), got {value!r}")
        return host, (port or None)

    def show(self, value: object) -> str:
        return _shown(value)
