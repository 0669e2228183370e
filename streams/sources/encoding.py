"""Recognise input files in an encoding other than UTF-8 before parsing them (pure).

A UTF-16 file decodes as UTF-8 surprisingly often (ASCII text becomes letters between NUL bytes),
and would then fail much later, line by line, as "binary data" or as bad JSON. Its byte-order mark
or its NUL-byte pattern gives it away; the hint says how to convert it.
"""

from __future__ import annotations

import shlex

#: Bytes of the file's head that the check looks at.
SNIFF_BYTES = 4096

_BOMS = (
    # UTF-32 first: its little-endian BOM begins with UTF-16's.
    (b"\xff\xfe\x00\x00", "UTF-32", "little-endian"),
    (b"\x00\x00\xfe\xff", "UTF-32", "big-endian"),
    (b"\xff\xfe", "UTF-16", "little-endian"),
    (b"\xfe\xff", "UTF-16", "big-endian"),
)


def _nul_pattern(head: bytes) -> str | None:
    """ "little-endian" or "big-endian" when NUL bytes sit at every other position (UTF-16 text)."""
    pairs = len(head) // 2
    if pairs < 2:
        return None
    even_nuls = head[0 : pairs * 2 : 2].count(0)
    odd_nuls = head[1 : pairs * 2 : 2].count(0)
    # Text in UTF-16 has a NUL in one half of most pairs and almost never in the other.
    if odd_nuls >= 0.6 * pairs and even_nuls <= 0.1 * pairs:
        return "little-endian"
    if even_nuls >= 0.6 * pairs and odd_nuls <= 0.1 * pairs:
        return "big-endian"
    return None


def encoding_problem(head: bytes, path: str = "FILE") -> str | None:
    """A one-line explanation and fix if `head` (the first bytes of `path`) is UTF-16 or UTF-32 text."""
    for bom, name, order in _BOMS:
        if head.startswith(bom):
            return f"looks like {name} ({order}, with a byte-order mark), not UTF-8; {_convert(name, path)}"
    found = _nul_pattern(head[:SNIFF_BYTES])
    if found is not None:
        # Without a BOM iconv's "UTF-16" means big-endian: name the byte order found.
        source = "UTF-16LE" if found == "little-endian" else "UTF-16BE"
        return f"looks like UTF-16 ({found}, no byte-order mark), not UTF-8; {_convert(source, path)}"
    return None


def _convert(name: str, path: str) -> str:
    quoted, target = shlex.quote(path), shlex.quote(f"{path}.utf8")
    return f"convert with iconv -f {name} -t UTF-8 {quoted} > {target}"
