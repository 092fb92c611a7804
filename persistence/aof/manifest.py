"""The multi-part AOF manifest: parse and write Valkey's grammar (spec 4.3, src/aof.c).

One line per file, ``file <name> seq <n> type <b|h|i>\\n``; the reader follows
``aofLoadManifestFromFile`` line by line (fgets with a 1025-byte buffer, ``#`` comments,
``sdssplitargs`` tokens, case-insensitive keys, extra key/value pairs ignored) and raises
:class:`ManifestError` with Valkey's own messages. The writer follows ``getAofManifestAsString``:
base, then history, then incr, names quoted with ``sdscatrepr`` only when ``sdsneedsrepr``.
Lines are tokenized as src/sds.c ``sdssplitargs`` does (:func:`_split`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, TypeAlias

from persistence.errors import ManifestError

FileType: TypeAlias = Literal["b", "h", "i"]

MANIFEST_MAX_LINE = 1024  # src/aof.c
DEFAULT_FILENAME = "appendonly.aof"
DEFAULT_DIRNAME = "appendonlydir"
MANIFEST_SUFFIX = ".manifest"
TEMP_PREFIX = "temp-"

ERR_EMPTY = "Found an empty AOF manifest"
ERR_TOO_LONG = "The AOF manifest file contains too long line"
ERR_FORMAT = "Invalid AOF manifest file format"
ERR_PATH = "File can't be a path, just a filename"
ERR_DUP_BASE = "Found duplicate base file information"
ERR_NON_MONOTONIC = "Found a non-monotonic sequence number"
ERR_UNKNOWN_TYPE = "Unknown AOF file type"


class ManifestLineError(ManifestError):
    """A manifest error on one line: ``line`` is 1-based, ``text`` the trimmed line (Valkey logs
    ``Reading the manifest file, at line N`` and ``>>> '<line>'``)."""

    def __init__(self, message: str, *, file: str | None, offset: int, line: int, text: str | None):
        self.line = line
        self.text = text
        super().__init__(message, file=file, offset=offset)

    def describe(self) -> str:
        base = super().describe()
        if self.text is None:
            return f"{base} (line {self.line})"
        return f"{base} (line {self.line}: '{self.text}')"


@dataclass(slots=True)
class ManifestEntry:
    name: str
    seq: int
    type: FileType
    line: int | None = None


@dataclass(slots=True)
class Manifest:
    base: ManifestEntry | None = None
    history: list[ManifestEntry] = field(default_factory=list)
    incrs: list[ManifestEntry] = field(default_factory=list)

    def files(self) -> list[ManifestEntry]:
        """The files loaded at start-up, in load order: base (if any) then incrs."""
        return ([self.base] if self.base is not None else []) + list(self.incrs)


# ---- names -------------------------------------------------------------------------------


def base_name(prefix: str, seq: int, rdb: bool) -> str:
    """``appendonly.aof.2.base.rdb`` or ``.aof`` (src/aof.c getNewBaseFileNameAndMarkPreAs...)"""
    return f"{prefix}.{seq}.base.{'rdb' if rdb else 'aof'}"


def incr_name(prefix: str, seq: int) -> str:
    return f"{prefix}.{seq}.incr.aof"


def manifest_name(prefix: str = DEFAULT_FILENAME) -> str:
    return prefix + MANIFEST_SUFFIX


def temp_manifest_name(prefix: str = DEFAULT_FILENAME) -> str:
    return TEMP_PREFIX + prefix + MANIFEST_SUFFIX


# ---- sds helpers -------------------------------------------------------------------------

_SPACE = b" \n\r\t\v\f"
_ESCAPES = {ord("n"): 10, ord("r"): 13, ord("t"): 9, ord("b"): 8, ord("a"): 7}
_HEX = b"0123456789abcdefABCDEF"


def needs_repr(s: bytes) -> bool:
    """src/sds.c ``sdsneedsrepr``."""
    return any(c in b'\\"\n\r\t\x07\x08' or not (0x20 <= c <= 0x7E) or c == 0x20 for c in s)


def cat_repr(s: bytes) -> bytes:
    """src/sds.c ``sdscatrepr``: a quoted, escaped string."""
    out = bytearray(b'"')
    for c in s:
        if c in (0x5C, 0x22):
            out += bytes((0x5C, c))
        elif c == 10:
            out += b"\\n"
        elif c == 13:
            out += b"\\r"
        elif c == 9:
            out += b"\\t"
        elif c == 7:
            out += b"\\a"
        elif c == 8:
            out += b"\\b"
        elif 0x20 <= c <= 0x7E:
            out.append(c)
        else:
            out += b"\\x%02x" % c
    out += b'"'
    return bytes(out)


def _split(line: bytes) -> list[bytes] | None:
    """``sdssplitargs`` of a manifest line: without quotes, \\v or \\f (as Valkey writes them)
    its arguments are the runs of non-blanks (``bytes.split``'s blanks are C ``isspace``);
    else persistence/resp/parser.py (imported only then: it costs ~8 ms of start-up)."""
    if b'"' in line or b"'" in line or b"\v" in line or b"\f" in line:
        from persistence.resp.tokens import split_args

        return split_args(line)
    return line.split()


def _atoll(s: bytes) -> int:
    """C ``atoll``: leading spaces, optional sign, digits; 0 when nothing parses."""
    i = 0
    n = len(s)
    while i < n and s[i] in _SPACE:
        i += 1
    neg = False
    if i < n and s[i] in b"+-":
        neg = s[i] == 0x2D
        i += 1
    j = i
    while j < n and 0x30 <= s[j] <= 0x39:
        j += 1
    if j == i:
        return 0
    v = int(s[i:j])
    v = min(v, 2**63 - 1) if not neg else min(v, 2**63)
    return -v if neg else v


# ---- parse / format ----------------------------------------------------------------------


def parse_manifest(data: bytes, *, file: str | None = None) -> Manifest:
    """Parse manifest bytes exactly like src/aof.c ``aofLoadManifestFromFile``."""
    am = Manifest()
    maxseq = 0
    pos = 0
    linenum = 0
    size = len(data)
    while True:
        if pos >= size:
            if linenum == 0:
                raise ManifestError(ERR_EMPTY, file=file, offset=0)
            break
        start = pos
        # fgets(buf, MANIFEST_MAX_LINE + 1): up to 1024 bytes, or through the newline
        nl = data.find(b"\n", pos, pos + MANIFEST_MAX_LINE)
        if nl == -1:
            chunk = data[pos : pos + MANIFEST_MAX_LINE]
        else:
            chunk = data[pos : nl + 1]
        pos += len(chunk)
        linenum += 1
        if chunk[:1] == b"#":
            continue  # comment lines
        if b"\n" not in chunk:
            raise ManifestLineError(ERR_TOO_LONG, file=file, offset=start, line=linenum, text=None)
        # sdsnew(buf) stops at a NUL byte
        line = chunk.split(b"\0", 1)[0].strip(b" \t\r\n")
        text = line.decode("utf-8", "backslashreplace")

        def fail(msg: str, _start: int = start, _n: int = linenum, _t: str = text) -> ManifestError:
            return ManifestLineError(msg, file=file, offset=_start, line=_n, text=_t)

        if not line:
            raise fail(ERR_FORMAT)
        argv = _split(line)
        # 'argc < 6' was done for forward compatibility (src/aof.c)
        if argv is None or len(argv) < 6 or len(argv) % 2:
            raise fail(ERR_FORMAT)
        name: bytes | None = None
        seq = 0
        ftype = 0
        for i in range(0, len(argv), 2):
            k = argv[i].lower()
            if k == b"file":
                name = argv[i + 1].split(b"\0", 1)[0]
                if b"/" in name or b"\\" in name:  # src/util.c pathIsBaseName
                    raise fail(ERR_PATH)
            elif k == b"seq":
                seq = _atoll(argv[i + 1])
            elif k == b"type":
                v = argv[i + 1]
                ftype = v[0] if v else 0
        if name is None or not seq or not ftype:
            raise fail(ERR_FORMAT)
        entry_name = os.fsdecode(name)
        if ftype == ord("b"):
            if am.base is not None:
                raise fail(ERR_DUP_BASE)
            am.base = ManifestEntry(entry_name, seq, "b", linenum)
        elif ftype == ord("h"):
            am.history.append(ManifestEntry(entry_name, seq, "h", linenum))
        elif ftype == ord("i"):
            if seq <= maxseq:
                raise fail(ERR_NON_MONOTONIC)
            am.incrs.append(ManifestEntry(entry_name, seq, "i", linenum))
            maxseq = seq
        else:
            raise fail(ERR_UNKNOWN_TYPE)
    return am


def format_entry(entry: ManifestEntry) -> bytes:
    """One manifest line (src/aof.c ``aofInfoFormat``)."""
    raw = os.fsencode(entry.name)
    name = cat_repr(raw) if needs_repr(raw) else raw
    return b"file %s seq %d type %s\n" % (name, entry.seq, entry.type.encode())


def format_manifest(manifest: Manifest) -> bytes:
    """The manifest text: base, then history, then incr (src/aof.c getAofManifestAsString)."""
    parts = []
    if manifest.base is not None:
        parts.append(format_entry(manifest.base))
    parts.extend(format_entry(e) for e in manifest.history)
    parts.extend(format_entry(e) for e in manifest.incrs)
    return b"".join(parts)


def read_manifest(path: str | os.PathLike[str]) -> Manifest:
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as e:
        # src/aof.c: "Fatal error: can't open the AOF manifest file %s for reading: %s"
        raise ManifestError(
            f"can't open the AOF manifest file {p} for reading: {e.strerror}", file=str(p)
        ) from e
    return parse_manifest(data, file=str(p))


def looks_like_manifest(head: bytes) -> bool:
    """valkey-check-aof's test: the first non-comment line starts with ``file``."""
    for line in head.split(b"\n"):
        if line.startswith(b"#"):
            continue
        return line.startswith(b"file")
    return False


def find_manifest(path: str | os.PathLike[str]) -> Path | None:
    """The manifest for ``path``: a manifest file itself, or the one inside an appendonlydir.

    For a directory: ``appendonly.aof.manifest`` if present, else the only ``*.manifest`` that is
    not a ``temp-`` file (several -> ManifestError). For a file: the file when its name ends in
    ``.manifest`` or its first non-comment line starts with ``file``. None otherwise.
    """
    p = Path(path)
    if p.is_dir():
        default = p / manifest_name()
        if default.is_file():
            return default
        found = sorted(
            c for c in p.glob("*" + MANIFEST_SUFFIX) if not c.name.startswith(TEMP_PREFIX)
        )
        if len(found) > 1:
            names = ", ".join(c.name for c in found)
            raise ManifestError(f"several AOF manifests in the directory: {names}", file=str(p))
        return found[0] if found else None
    if p.name.endswith(MANIFEST_SUFFIX):
        return p
    try:
        with open(p, "rb") as f:
            head = f.read(MANIFEST_MAX_LINE)
    except OSError:
        return None
    return p if looks_like_manifest(head) else None
