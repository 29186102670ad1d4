"""The stand-in container's programs and a small POSIX-shell subset for ``sh -c``. Its arguments are
data: nothing is ever run on this machine.

Programs (output byte for byte as GNU coreutils / BusyBox / vim's xxd print it): ``echo [-n]``,
``printf`` (``%s %d %%``, ``\\n \\t \\\\``), ``env`` / ``printenv [NAME…]``, ``cat [FILE|-…]``,
``base64 [-d] [-w N]`` (wraps at 76), ``xxd [-p] [-u] [-c N]``, ``od [-A n|o|d|x] [-t x1|o2|c] [-v]``,
``rev``, ``fold [-w N]``, ``ls [DIR]``, ``hostname``, ``id``, ``true``, ``false``, ``exit N``,
``sleep N``, ``seq N``. The shell: words with single and double quotes and backslashes, ``$NAME``,
``${NAME}`` and ``$(…)`` (unquoted results split on whitespace), pipelines ``|``, lists ``;`` ``&&``
``||``. Redirections, globs, functions and control flow are refused (exit 2), never guessed at.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace

from devhost.kubernetes.container import Container

STDOUT, STDERR = 1, 2
Write = Callable[[int, bytes], Awaitable[None]]


class Exit(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


class Unsupported(Exception):
    """Shell syntax the stand-in does not emulate."""


@dataclass(frozen=True)
class Io:
    container: Container
    write: Write
    stdin: bytes = b""

    async def out(self, data: bytes | str) -> None:
        await self.write(STDOUT, data.encode() if isinstance(data, str) else data)

    async def err(self, data: str) -> None:
        await self.write(STDERR, data.encode())


async def run(argv: list[str], io: Io) -> int:
    """Run one command line in the stand-in container; its exit code."""
    try:
        return await _program(argv, io)
    except Exit as done:
        return done.code


async def _program(argv: list[str], io: Io) -> int:
    if not argv:
        return 0
    name, args = argv[0].rsplit("/", 1)[-1], argv[1:]
    if name in ("sh", "bash") and args[:1] == ["-c"] and len(args) > 1:
        try:
            return await _script(args[1], io)
        except Unsupported as why:
            await io.err(f"{name}: {why}\n")
            return 2
    program = PROGRAMS.get(name)
    if program is None:
        await io.err(f"sh: {name}: not found\n")
        return 127
    return await program(args, io)


# --- programs -------------------------------------------------------------------------------
async def _echo(args: list[str], io: Io) -> int:
    newline = args[:1] != ["-n"]
    await io.out(" ".join(args[0 if newline else 1:]) + ("\n" if newline else ""))
    return 0


async def _printf(args: list[str], io: Io) -> int:
    if not args:
        await io.err("printf: missing operand\n")
        return 1
    fmt, rest = args[0], args[1:]
    out = []
    while True:
        i, used = 0, 0
        while i < len(fmt):
            ch = fmt[i]
            if ch == "\\" and i + 1 < len(fmt):
                out.append({"n": "\n", "t": "\t", "\\": "\\"}.get(fmt[i + 1], "\\" + fmt[i + 1]))
                i += 2
            elif ch == "%" and i + 1 < len(fmt):
                spec = fmt[i + 1]
                if spec == "%":
                    out.append("%")
                elif spec in "sd":
                    arg = rest[used] if used < len(rest) else ""
                    used += 1
                    out.append(str(int(arg or 0)) if spec == "d" else arg)
                else:
                    raise Unsupported(f"printf: %{spec}: invalid directive")
                i += 2
            else:
                out.append(ch)
                i += 1
        rest = rest[used:]
        if not rest or not used:
            break
    await io.out("".join(out))
    return 0


async def _env(args: list[str], io: Io) -> int:
    env = dict(io.container.env)
    while args and "=" in args[0]:
        key, _, value = args.pop(0).partition("=")
        env[key] = value
    if args:
        return await _program(args, replace(io, container=replace(io.container, env=env)))
    await io.out("".join(f"{k}={v}\n" for k, v in env.items()))
    return 0


async def _printenv(args: list[str], io: Io) -> int:
    env = io.container.env
    if not args:
        await io.out("".join(f"{k}={v}\n" for k, v in env.items()))
        return 0
    await io.out("".join(env[a] + "\n" for a in args if a in env))
    return 0 if all(a in env for a in args) else 1


def _read(path: str, io: Io, program: str) -> bytes:
    if path == "-":
        return io.stdin
    files = io.container.files
    if path in files:
        return files[path]
    if path.rstrip("/") in io.container.directories() or path == "/":
        raise _Failed(f"{program}: {path}: Is a directory\n")
    raise _Failed(f"{program}: {path}: No such file or directory\n")


class _Failed(Exception):
    pass


async def _inputs(files: list[str], io: Io, program: str) -> bytes | None:
    try:
        return b"".join(_read(f, io, program) for f in files) if files else io.stdin
    except _Failed as failed:
        await io.err(str(failed))
        return None


async def _cat(args: list[str], io: Io) -> int:
    code = 0
    for path in args or ["-"]:
        try:
            await io.out(_read(path, io, "cat"))
        except _Failed as failed:
            await io.err(str(failed))
            code = 1
    return code


def _options(args: list[str], flags: str, valued: str, io_name: str) -> tuple[dict[str, str], list[str]]:
    """getopt-style: ``-d``, ``-w 0``, ``-w0``, ``--wrap=0``; unknown options fail like the tools do."""
    opts: dict[str, str] = {}
    rest: list[str] = []
    long = {"--decode": "d", "--wrap": "w"}
    i = 0
    while i < len(args):
        a = args[i]
        if a.startswith("--") and a != "--":
            key, _, value = a.partition("=")
            if key not in long:
                raise _Failed(f"{io_name}: unrecognized option '{a}'\n")
            opt = long[key]
            if opt in valued and not value:
                i += 1
                value = args[i] if i < len(args) else ""
            opts[opt] = value or "1"
        elif a.startswith("-") and len(a) > 1:
            j = 1
            while j < len(a):
                opt = a[j]
                if opt in valued:
                    value = a[j + 1:] or (args[i + 1] if i + 1 < len(args) else "")
                    if not a[j + 1:]:
                        i += 1
                    opts[opt] = value
                    break
                if opt not in flags:
                    raise _Failed(f"{io_name}: invalid option -- '{opt}'\n")
                opts[opt] = "1"
                j += 1
        else:
            rest.append(a)
        i += 1
    return opts, rest


async def _base64(args: list[str], io: Io) -> int:
    try:
        opts, files = _options(args, "di", "w", "base64")
    except _Failed as failed:
        await io.err(str(failed))
        return 1
    data = await _inputs(files, io, "base64")
    if data is None:
        return 1
    if "d" in opts:
        try:
            await io.out(base64.b64decode(b"".join(data.split()), validate=True))
        except binascii.Error:
            await io.err("base64: invalid input\n")
            return 1
        return 0
    encoded = base64.b64encode(data).decode()
    wrap = int(opts.get("w", "76") or 0)
    if wrap and encoded:
        encoded = "\n".join(encoded[i:i + wrap] for i in range(0, len(encoded), wrap))
    await io.out((encoded + "\n" if encoded else "") if wrap else encoded)  # -w 0: no final newline
    return 0


async def _xxd(args: list[str], io: Io) -> int:
    try:
        opts, files = _options(args, "pu", "c", "xxd")
    except _Failed as failed:
        await io.err(str(failed))
        return 1
    data = await _inputs(files[:1], io, "xxd")
    if data is None:
        return 2
    upper = "u" in opts
    if "p" in opts:
        cols = int(opts.get("c", "30") or 30)
        lines = [data[i:i + cols].hex() for i in range(0, len(data), cols)]
        text = "".join(line + "\n" for line in lines)
        await io.out(text.upper() if upper else text)
        return 0
    cols = int(opts.get("c", "16") or 16)
    out = []
    for off in range(0, len(data), cols):
        chunk = data[off:off + cols]
        hexed = chunk.hex().upper() if upper else chunk.hex()
        groups = " ".join(hexed[i:i + 4] for i in range(0, len(hexed), 4))
        width = cols * 2 + (cols + 1) // 2 - 1
        ascii_ = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
        out.append(f"{off:08x}: {groups.ljust(width)}  {ascii_}\n")
    await io.out("".join(out))
    return 0


async def _od(args: list[str], io: Io) -> int:
    try:
        opts, files = _options(args, "v", "At", "od")
    except _Failed as failed:
        await io.err(str(failed))
        return 1
    radix, kind = opts.get("A", "o"), opts.get("t", "o2")
    if radix not in ("n", "o", "d", "x") or kind not in ("x1", "o2", "c"):
        await io.err(f"od: invalid argument '{kind if radix in 'nodx' else radix}'\n")
        return 1
    data = await _inputs(files, io, "od")
    if data is None:
        return 1
    lines, previous, starred = [], None, False
    for off in range(0, len(data), 16):
        chunk = data[off:off + 16]
        if chunk == previous and "v" not in opts and len(chunk) == 16:
            if not starred:
                lines.append("*\n")
                starred = True
            continue
        previous, starred = chunk, False
        lines.append(_offset(off, radix) + _od_cells(chunk, kind) + "\n")
    if radix != "n":
        lines.append(_offset(len(data), radix).rstrip() + "\n")
    await io.out("".join(lines))
    return 0


def _offset(off: int, radix: str) -> str:
    return {"n": "", "o": f"{off:07o}", "d": f"{off:07d}", "x": f"{off:06x}"}[radix]


def _od_cells(chunk: bytes, kind: str) -> str:
    if kind == "x1":
        return "".join(f" {b:02x}" for b in chunk)
    if kind == "c":
        names = {0: "\\0", 7: "\\a", 8: "\\b", 9: "\\t", 10: "\\n", 11: "\\v", 12: "\\f", 13: "\\r"}
        return "".join(f"{names.get(b, chr(b) if 32 <= b < 127 else f'{b:03o}'):>4}" for b in chunk)
    padded = chunk + b"\0" * (len(chunk) % 2)
    return "".join(f" {int.from_bytes(padded[i:i + 2], 'little'):06o}" for i in range(0, len(padded), 2))


async def _rev(args: list[str], io: Io) -> int:
    data = await _inputs(args, io, "rev")
    if data is None:
        return 1
    text = data.decode("utf-8", "replace")
    lines = text.split("\n")
    await io.out("\n".join(line[::-1] for line in lines))
    return 0


async def _fold(args: list[str], io: Io) -> int:
    try:
        opts, files = _options(args, "bs", "w", "fold")
    except _Failed as failed:
        await io.err(str(failed))
        return 1
    data = await _inputs(files, io, "fold")
    if data is None:
        return 1
    width = int(opts.get("w", "80") or 80)
    out = []
    for line in data.decode("utf-8", "replace").split("\n"):
        out.append("\n".join(line[i:i + width] for i in range(0, len(line), width)) if line else "")
    await io.out("\n".join(out))
    return 0


async def _ls(args: list[str], io: Io) -> int:
    target = (args[-1] if args and not args[-1].startswith("-") else "/").rstrip("/") or "/"
    files = io.container.files
    if target == "/":
        await io.out("bin\ndev\netc\nhome\nproc\nroot\nsys\ntmp\nusr\nvar\n")
        return 0
    if target in files:
        await io.out(target + "\n")
        return 0
    names = sorted({p[len(target) + 1:].split("/")[0] for p in files if p.startswith(target + "/")})
    if not names:
        await io.err(f"ls: cannot access '{target}': No such file or directory\n")
        return 2
    await io.out("".join(n + "\n" for n in names))
    return 0


async def _simple(args: list[str], io: Io, name: str) -> int:
    if name == "hostname":
        await io.out(io.container.env["HOSTNAME"] + "\n")
    elif name == "id":
        await io.out("uid=101(nginx) gid=101(nginx) groups=101(nginx)\n")
    elif name == "false":
        return 1
    elif name == "exit":
        raise Exit(int(args[0]) if args else 0)
    elif name == "sleep":
        await asyncio.sleep(float(args[0]) if args else 0)
    elif name == "seq":
        last = int(args[-1])
        for start in range(1, last + 1, 1000):
            await io.out("".join(f"{i}\n" for i in range(start, min(start + 1000, last + 1))))
    return 0


def _named(name: str) -> Callable[[list[str], Io], Awaitable[int]]:
    return lambda args, io: _simple(args, io, name)


PROGRAMS: dict[str, Callable[[list[str], Io], Awaitable[int]]] = {
    "echo": _echo, "printf": _printf, "env": _env, "printenv": _printenv, "cat": _cat, "base64": _base64,
    "xxd": _xxd, "od": _od, "rev": _rev, "fold": _fold, "ls": _ls,
    **{n: _named(n) for n in ("hostname", "id", "true", "false", "exit", "sleep", "seq")},
}


# --- the shell ------------------------------------------------------------------------------
_OPERATORS = ("&&", "||", ";", "|", "\n")


async def _script(script: str, io: Io) -> int:
    tokens = await _tokens(script, io)
    code, pipeline, run_next, op = 0, [[]], True, ";"
    for token in [*tokens, (";",)]:
        if isinstance(token, tuple):  # an operator
            if token[0] == "|":
                pipeline.append([])
                continue
            if run_next and any(pipeline):
                code = await _pipeline(pipeline, io)
            elif not any(pipeline) and token[0] != ";":
                raise Unsupported(f"syntax error near unexpected token `{token[0]}'")
            pipeline = [[]]
            op = token[0]
            run_next = op in (";", "\n") or (op == "&&" and code == 0) or (op == "||" and code != 0)
        else:
            pipeline[-1].append(token)
    return code


async def _pipeline(commands: list[list[str]], io: Io) -> int:
    stdin, code = io.stdin, 0
    for i, argv in enumerate(commands):
        last = i == len(commands) - 1
        if last:
            code = await _program(argv, replace(io, stdin=stdin))
        else:
            buffer: list[bytes] = []

            async def capture(channel: int, data: bytes, buffer: list[bytes] = buffer) -> None:
                if channel == STDOUT:
                    buffer.append(data)
                else:
                    await io.write(channel, data)

            with contextlib.suppress(Exit):  # exit in a pipeline ends that subshell only
                await _program(argv, Io(io.container, capture, stdin))
            stdin = b"".join(buffer)
    return code


async def _tokens(script: str, io: Io) -> list[str | tuple[str]]:
    """Words (expanded) and operators (as 1-tuples)."""
    out: list[str | tuple[str]] = []
    i, n = 0, len(script)
    word: list[str] = []
    has_word = False

    def flush() -> None:
        nonlocal word, has_word
        if has_word:
            out.append("".join(word))
        word, has_word = [], False

    while i < n:
        ch = script[i]
        if ch in " \t":
            flush()
            i += 1
        elif any(script.startswith(op, i) for op in _OPERATORS):
            flush()
            op = next(op for op in _OPERATORS if script.startswith(op, i))
            out.append((op,))
            i += len(op)
        elif ch in "<>&(){}*?[`#" and not (ch == "#" and has_word):
            raise Unsupported(f"`{ch}' is not supported by this stand-in")
        elif ch == "'":
            end = script.find("'", i + 1)
            if end < 0:
                raise Unsupported("unterminated quoted string")
            word.append(script[i + 1:end])
            has_word, i = True, end + 1
        elif ch == '"':
            i += 1
            while i < n and script[i] != '"':
                if script[i] == "\\" and i + 1 < n and script[i + 1] in '"\\$`':
                    word.append(script[i + 1])
                    i += 2
                elif script[i] == "$":
                    value, i = await _expand(script, i, io)
                    word.append(value)
                else:
                    word.append(script[i])
                    i += 1
            if i >= n:
                raise Unsupported("unterminated quoted string")
            has_word, i = True, i + 1
        elif ch == "\\" and i + 1 < n:
            word.append(script[i + 1])
            has_word, i = True, i + 2
        elif ch == "$":
            value, i = await _expand(script, i, io)
            fields = value.split()
            if fields:  # unquoted: split on whitespace; an empty expansion is no word
                word.append(fields[0])
                has_word = True
                for extra in fields[1:]:
                    flush()
                    word, has_word = [extra], True
        else:
            word.append(ch)
            has_word, i = True, i + 1
    flush()
    return out


async def _expand(script: str, i: int, io: Io) -> tuple[str, int]:
    """``$NAME``, ``${NAME}`` or ``$(…)`` at ``i``: the value and where the text goes on."""
    env = io.container.env
    if script.startswith("$(", i):
        depth, j = 1, i + 2
        while j < len(script) and depth:
            depth += {"(": 1, ")": -1}.get(script[j], 0)
            j += 1
        if depth:
            raise Unsupported("unterminated command substitution")
        captured: list[bytes] = []

        async def capture(channel: int, data: bytes) -> None:
            if channel == STDOUT:
                captured.append(data)
            else:
                await io.write(channel, data)

        await _script(script[i + 2:j - 1], Io(io.container, capture, b""))
        return b"".join(captured).decode("utf-8", "replace").rstrip("\n"), j
    if script.startswith("${", i):
        end = script.find("}", i)
        if end < 0:
            raise Unsupported("bad substitution")
        name = script[i + 2:end]
        if not name.replace("_", "a").isalnum():
            raise Unsupported(f"${{{name}}}: bad substitution")
        return env.get(name, ""), end + 1
    j = i + 1
    while j < len(script) and (script[j].isalnum() or script[j] == "_"):
        j += 1
    if j == i + 1:
        return "$", j
    return env.get(script[i + 1:j], ""), j
