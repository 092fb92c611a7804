"""The pieces of a request that Valkey reads the same way everywhere: its strict integers
(src/util.c string2ll), its argument splitting for inline commands (src/sds.c sdssplitargs) and
the protocol error a bad request gets. Used by the request parser and by every command that
takes an integer argument.
"""

from __future__ import annotations

from typing import Final

from persistence.errors import FormatError

_LONG_STR_SIZE: Final = 21  # src/util.h: string2ll rejects 21+ characters
_LLONG_MAX: Final = 2**63 - 1


class ProtocolError(FormatError):
    """Bad RESP input. ``message`` is Valkey's exact text (``Protocol error: ...``, without the
    ``ERR`` code, which the server adds when replying); ``offset`` is the stream offset of the
    command or frame that failed."""

    @property
    def wire(self) -> bytes:
        """The error line a server sends: ``-ERR <message>\\r\\n`` (raw bytes kept)."""
        return b"-ERR " + self.message.encode("latin-1") + b"\r\n"


_SMALL_LL = {b"%d" % i: i for i in range(-1, 10000)}


def string2ll(s: bytes | bytearray | memoryview) -> int | None:
    """Valkey's strict ``string2ll`` (src/util.c): no sign but ``-``, no leading zeros, no
    spaces, no ``-0``, 64-bit range; None when invalid."""
    b = s if type(s) is bytes else bytes(s)
    v = _SMALL_LL.get(b)
    if v is not None:
        return v
    n = len(b)
    if n == 0 or n >= _LONG_STR_SIZE:
        return None
    digits = b[1:] if b[0] == 0x2D else b
    if not digits or not digits.isdigit() or digits[0] == 0x30:
        return None
    v = int(b)
    if v > _LLONG_MAX or v < -_LLONG_MAX - 1:
        return None
    return v


# --------------------------------------------------------------------------------------------
# sdssplitargs (src/sds.c, Valkey 9: quoted and unquoted parts may be mixed, shell style)
# --------------------------------------------------------------------------------------------

_C_ISSPACE = frozenset(b" \t\n\v\f\r")  # isspace() in the C locale
_TOKEN_END = frozenset(b" \n\r\t")  # characters that end an unquoted token in sdssplitargs
_HEX = frozenset(b"0123456789abcdefABCDEF")
_ESCAPES = {ord("n"): 10, ord("r"): 13, ord("t"): 9, ord("b"): 8, ord("a"): 7}


def split_args(line: bytes | bytearray | memoryview) -> list[bytes] | None:
    """Split a line like Valkey's ``sdssplitargs``; None for unbalanced quotes.

    ``foo "bar baz" 'q\\'s' "\\x41\\n"`` -> ``[b"foo", b"bar baz", b"q's", b"A\\n"]``.
    Valkey 9 rules, verified against valkey-server 9.1.2: quoted and unquoted parts of one
    argument concatenate (``"a"b'c'`` -> ``abc``, valkey PR #2098); in double quotes ``\\xHH``,
    ``\\n \\r \\t \\b \\a`` and ``\\<any>`` escapes, in single quotes only ``\\'``; a backslash
    whose escaped character would be the last character of the line is literal (``"a\\"`` ->
    ``a\\``); the line ends at a NUL byte (C string). Blanks between arguments are C
    ``isspace``; an unquoted part ends only at space, tab, CR or LF.
    """
    data = bytes(line)
    nul = data.find(b"\0")
    if nul >= 0:
        data = data[:nul]
    end = len(data)
    out: list[bytes] = []
    p = 0
    while True:
        while p < end and data[p] in _C_ISSPACE:
            p += 1
        if p >= end:
            return out
        cur = bytearray()
        inq = insq = False
        while True:
            if inq:
                if p >= end:
                    return None  # unterminated quotes
                c = data[p]
                if (
                    c == 0x5C
                    and p + 4 < end
                    and data[p + 1] == 0x78
                    and data[p + 2] in _HEX
                    and data[p + 3] in _HEX
                ):
                    cur.append(int(data[p + 2 : p + 4], 16))
                    p += 4
                elif c == 0x5C and p + 2 < end:
                    e = data[p + 1]
                    cur.append(_ESCAPES.get(e, e))
                    p += 2
                elif c == 0x22:
                    inq = False
                    p += 1
                else:
                    cur.append(c)
                    p += 1
            elif insq:
                if p >= end:
                    return None
                c = data[p]
                if c == 0x5C and p + 2 < end and data[p + 1] == 0x27:
                    cur.append(0x27)
                    p += 2
                elif c == 0x27:
                    insq = False
                    p += 1
                else:
                    cur.append(c)
                    p += 1
            else:
                if p >= end:
                    break
                c = data[p]
                p += 1
                if c in _TOKEN_END:
                    break
                if c == 0x22:
                    inq = True
                elif c == 0x27:
                    insq = True
                else:
                    cur.append(c)
        out.append(bytes(cur))
