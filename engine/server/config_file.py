"""valkey.conf files and ``--name value`` command-line options, as valkey-server reads them
(src/config.c loadServerConfigFromString, src/server.c main): one directive per line, arguments
split with sdssplitargs quoting, ``#`` comments; on the command line an optional config file
first, then ``--name value...`` pairs (a value may be several words, or ``""``)."""

from __future__ import annotations

from pathlib import Path

from engine.config import BY_NAME, Config
from engine.errors import CommandError
from persistence.resp.tokens import split_args


class ConfigFileError(Exception):
    pass


FATAL = "*** FATAL CONFIG FILE ERROR ***"  # src/config.c loadServerConfigFromString


def directives_from_text(text: str, *, source: str = "<config>") -> list[tuple[str, list[str]]]:
    out: list[tuple[str, list[str]]] = []
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        args = split_args(line.encode())
        if args is None:
            raise ConfigFileError(
                f"{FATAL} line {lineno} ({source}): Unbalanced quotes in configuration line"
            )
        out.append((args[0].decode().lower(), [a.decode(errors="replace") for a in args[1:]]))
    return out


def directives_from_argv(argv: list[str]) -> tuple[str | None, list[tuple[str, list[str]]]]:
    """``[config-file] [--name value ...]`` -> (config file, directives)."""
    conf: str | None = None
    i = 0
    if argv and not argv[0].startswith("--"):
        conf = argv[0]
        i = 1
    out: list[tuple[str, list[str]]] = []
    while i < len(argv):
        a = argv[i]
        if not a.startswith("--"):
            raise ConfigFileError(f"Invalid argument '{a}': options start with --")
        name = a[2:].lower()
        i += 1
        vals: list[str] = []
        while i < len(argv) and not argv[i].startswith("--"):
            vals.append(argv[i])
            i += 1
        out.append((name, vals))
    return conf, out


def apply(config: Config, directives: list[tuple[str, list[str]]]) -> None:
    for name, vals in directives:
        if name not in BY_NAME:
            raise ConfigFileError(f"{FATAL} Bad directive or wrong number of arguments: '{name}'")
        try:
            config.set(name, " ".join(vals), startup=True)
        except CommandError as e:
            raise ConfigFileError(f"{FATAL} '{name} {' '.join(vals)}': {e.message}") from None


def load(argv: list[str]) -> tuple[Config, str | None]:
    conf_path, cli = directives_from_argv(argv)
    config = Config()
    if conf_path is not None:
        apply(config, directives_from_text(Path(conf_path).read_text(), source=conf_path))
    apply(config, cli)
    return config, conf_path
