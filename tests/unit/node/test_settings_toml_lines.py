"""The line of each TOML table and key, including the cases a line-by-line regex gets wrong."""

from __future__ import annotations

import tomllib

from meshkp.node.settings.toml_lines import key_lines, line_of

TEXT = '''\
# a comment = not a key
title = "x = 1"            # a string holding "="

[cluster]
enabled = true
"quoted key" = 1
consensus.algorithm = "raft"
notes = """
port = 99
[hkp]
"""
literal = \'\'\'
fake = 2 \'\'\'
peers = [
  "a:1",   # host = 3
  "b:2",
]
inline = { x = 1, y = { z = 2 } }

  [ cluster . discovery ]
method = "static"

[[servers]]
name = "a"
'''


def test_lines_of_tables_and_keys() -> None:
    tomllib.loads(TEXT)  # the scanner only ever sees text that tomllib accepted
    lines = key_lines(TEXT)
    assert lines[("title",)] == 2
    assert lines[("cluster",)] == 4
    assert lines[("cluster", "enabled")] == 5
    assert lines[("cluster", "quoted key")] == 6
    assert lines[("cluster", "consensus")] == 7 and lines[("cluster", "consensus", "algorithm")] == 7
    assert lines[("cluster", "notes")] == 8
    assert lines[("cluster", "literal")] == 12
    assert lines[("cluster", "peers")] == 14
    assert lines[("cluster", "inline")] == 18
    assert lines[("cluster", "inline", "y", "z")] == 18
    assert lines[("cluster", "discovery")] == 20
    assert lines[("cluster", "discovery", "method")] == 21
    assert lines[("servers", "name")] == 24


def test_text_inside_strings_and_arrays_is_never_a_key() -> None:
    lines = key_lines(TEXT)
    for path in [("port",), ("cluster", "port"), ("hkp",), ("cluster", "fake"), ("fake",),
                 ("cluster", "host"), ("a comment",)]:
        assert path not in lines


def test_line_of_falls_back_to_the_enclosing_table() -> None:
    lines = key_lines(TEXT)
    assert line_of(lines, ("cluster", "discovery", "nope")) == 20
    assert line_of(lines, ("nowhere", "at_all")) is None
