"""Valkey's glob matcher (src/util.c stringmatchlen), used by KEYS, SCAN MATCH and RDB filters.

Syntax: ``*`` any run, ``?`` one byte, ``[abc]`` / ``[^abc]`` / ``[a-z]`` classes (a reversed range
is swapped), ``\\x`` a literal x. An unterminated ``[`` class ends at the end of the pattern.
Matching is on bytes; ``nocase`` lowers ASCII letters only (C ``tolower`` in the C locale).
A lone ``*`` matches everything, the empty string included, as KEYS and SCAN treat it (src/db.c
skips matching for it); otherwise an empty string matches nothing, as in stringmatchlen.
"""

from __future__ import annotations

_MAX_NESTING = 1000  # src/util.c: stringmatchlen_impl gives up (no match) past this depth


def _lower(c: int) -> int:
    return c + 32 if 65 <= c <= 90 else c


def glob_match(pattern: bytes, s: bytes, nocase: bool = False) -> bool:
    """True when ``s`` matches ``pattern`` exactly as Valkey's ``stringmatchlen`` decides."""
    if pattern == b"*":
        return True
    if not any(c in pattern for c in b"*?[\\"):
        return pattern.lower() == s.lower() if nocase else pattern == s
    skip = [False]
    return _match(pattern, 0, s, 0, nocase, skip, 0)


def _match(p: bytes, pi: int, s: bytes, si: int, nocase: bool, skip: list[bool], nest: int) -> bool:
    # A line-by-line port of stringmatchlen_impl (src/util.c), indices instead of pointers.
    if nest > _MAX_NESTING:
        return False
    plen = len(p)
    slen = len(s)
    while pi < plen and si < slen:
        c = p[pi]
        if c == 0x2A:  # '*'
            while pi + 1 < plen and p[pi + 1] == 0x2A:
                pi += 1
            if pi + 1 == plen:
                return True
            while si < slen:
                if _match(p, pi + 1, s, si, nocase, skip, nest + 1):
                    return True
                if skip[0]:
                    return False
                si += 1
            skip[0] = True  # src/util.c skipLongerMatches: a longer string can't match either
            return False
        elif c == 0x3F:  # '?'
            si += 1
        elif c == 0x5B:  # '['
            pi += 1
            negate = pi < plen and p[pi] == 0x5E
            if negate:
                pi += 1
            matched = False
            sc = s[si]
            while True:
                if pi < plen and p[pi] == 0x5C and plen - pi >= 2:
                    pi += 1
                    if p[pi] == sc:
                        matched = True
                elif pi < plen and p[pi] == 0x5D:
                    break
                elif pi >= plen:
                    pi -= 1  # src/util.c: unterminated class, step back so the loop ends
                    break
                elif plen - pi >= 3 and p[pi + 1] == 0x2D:
                    lo, hi, cc = p[pi], p[pi + 2], sc
                    if lo > hi:
                        lo, hi = hi, lo
                    if nocase:
                        lo, hi, cc = _lower(lo), _lower(hi), _lower(cc)
                    pi += 2
                    if lo <= cc <= hi:
                        matched = True
                elif nocase:
                    if _lower(p[pi]) == _lower(sc):
                        matched = True
                elif p[pi] == sc:
                    matched = True
                pi += 1
            if negate:
                matched = not matched
            if not matched:
                return False
            si += 1
        else:
            if c == 0x5C and plen - pi >= 2:  # '\\' escapes the next byte
                pi += 1
                c = p[pi]
            if nocase:
                if _lower(c) != _lower(s[si]):
                    return False
            elif c != s[si]:
                return False
            si += 1
        pi += 1
        if si == slen:
            while pi < plen and p[pi] == 0x2A:
                pi += 1
            break
    return pi == plen and si == slen
