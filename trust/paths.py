"""Path and file-name rules for values that come from a workflow, and outputs that never replace a file.

A path from a workflow must lie inside the folders the caller allows (ComfyUI's models, input, output, user
folders...), checked after resolving symlinks. Before that, values are refused outright when they carry a NUL
byte, URL-encoding (`%2e%2e`), Windows separators or drive letters, `~`, a URL scheme or a `..` step: none of
these has a legitimate use in a shared workflow, and refusing them keeps the error about the value itself.
"""
from __future__ import annotations

import filecmp
import json
import os
import re
import struct
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

_ENCODED = re.compile(r"%[0-9A-Fa-f]{2}")
_DRIVE = re.compile(r"^[A-Za-z]:")
_NAME = re.compile(r"^[\w.\- ]+$")
_PATH_SUFFIXES = (".txt", ".json", ".jsonl", ".yaml", ".yml", ".safetensors", ".csv")
MAX_NAME = 200
MAX_COUNTER = 99_999


class PathRefused(ValueError):
    """A name or path from a workflow that breaks a rule; the message names the input and the rule."""
    __module__ = "rewardloop.trust"  # how ComfyUI names the error type on the node (not the folder path)


def _shown(value: str) -> str:
    return repr(value if len(value) <= 120 else value[:117] + "...")


def _text_rules(value, where: str) -> str:
    if not isinstance(value, str):
        raise PathRefused(f"{where}: expected a file name (text), got {type(value).__name__}.")
    text = value.strip()
    rule = None
    if not text:
        raise PathRefused(f"{where} is empty: give a file name.")
    if "\x00" in text:
        rule = "contains a NUL byte"
    elif _ENCODED.search(text):
        rule = "is URL-encoded (%XX); write the name itself"
    elif "\\" in text:
        rule = "uses Windows separators (\\); use '/' between folders"
    elif _DRIVE.match(text) or text.startswith("//"):
        rule = "names a drive or network share"
    elif text.startswith("~"):
        rule = "starts with '~' (a home folder)"
    elif "://" in text:
        rule = "is a URL"
    elif ".." in PurePosixPath(text).parts:
        rule = "steps out of its folder with '..'"
    if rule:
        raise PathRefused(f"{where}: {_shown(text)} {rule}. A workflow may only name files inside ComfyUI's folders.")
    return text


def plain_name(value, where: str, suffix: str = "") -> str:
    """A file name the pack writes (no folders): letters, digits, spaces, '.', '-', '_'; `suffix` is appended
    when missing."""
    if not isinstance(value, str) or not value.strip():
        raise PathRefused(f"{where} is empty: give a file name.")
    name = value.strip()
    if suffix and not name.endswith(suffix):
        name += suffix
    if not _NAME.match(name) or name.startswith(".") or len(name) > MAX_NAME:
        raise PathRefused(f"{where}: {_shown(name)} is not a plain file name: use letters, digits, spaces, '.', '-' "
                          f"or '_' (no folders, at most {MAX_NAME} characters, not starting with '.').")
    return name


def child_name(value, where: str) -> str:
    """The name of one entry directly inside a folder (a model file picked by name): any characters a file name
    may hold, but no folders, no '..', nothing absolute, and none of the refused spellings above."""
    text = _text_rules(value, where)
    if "/" in text or text in (".", "..") or len(text) > MAX_NAME:
        raise PathRefused(f"{where}: {_shown(text)} is not a file name inside its folder (no '/', at most "
                          f"{MAX_NAME} characters). Put the file in the folder and give its name only.")
    return text


def looks_like_path(text: str) -> bool:
    """Whether one line of text is meant as a file path rather than, say, a prompt."""
    text = text.strip()
    if not text or "\n" in text:
        return False
    return (text.startswith(("/", "~", "./", "../")) or "\\" in text or bool(_DRIVE.match(text))
            or bool(_ENCODED.search(text)) or "://" in text or text.lower().endswith(_PATH_SUFFIXES))


def _real(path: Path) -> Path:
    return Path(os.path.realpath(path))


def is_inside(path: str | os.PathLike, roots: Sequence[str | os.PathLike]) -> bool:
    """`path` lies in one of `roots`, both taken after resolving symlinks."""
    real = _real(Path(path))
    for root in roots:
        r = _real(Path(root))
        if real == r or r in real.parents:
            return True
    return False


def resolve_inside(value, where: str, roots: Sequence[str | os.PathLike], *, what: str,
                   must_exist: bool = False) -> Path:
    """The real path `value` names inside one of `roots` (what: how messages name them, e.g. "ComfyUI's input
    folder"). A relative value is looked up in each root in order; an absolute one must lie inside a root.
    Everything is checked after resolving symlinks, so a link out of a folder is refused like the path itself."""
    text = _text_rules(value, where)
    folders = [Path(r) for r in roots]
    listed = ", ".join(str(f) for f in folders) or "(none configured)"
    path = Path(text)
    candidates = [path] if path.is_absolute() else [f / path for f in folders]
    for candidate in candidates:
        real = _real(candidate)
        if not is_inside(real, folders):
            how = "resolves (through a symbolic link) to" if not path.is_absolute() else "is"
            raise PathRefused(f"{where}: {_shown(text)} {how} a place outside {what} ({listed}). A workflow may only "
                              "name files inside ComfyUI's folders (checked after resolving symbolic links).")
        if must_exist and not real.exists():
            continue
        return real
    raise PathRefused(f"{where}: {_shown(text)} was not found in {what} ({listed}). Put it there and give its name.")


def publish(tmp: str | os.PathLike, target: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Move the finished file `tmp` (in the target's folder) to `target`, never replacing another file: when
    `target` exists with different content, the first free `<stem>_00001<suffix>`, `<stem>_00002<suffix>`... is
    used (as ComfyUI's savers number their files). A target with exactly the same content is kept as it is;
    `overwrite` replaces it. Returns the path written."""
    tmp, target = Path(tmp), Path(target)
    if overwrite:
        os.replace(tmp, target)
        return target
    candidates = [target] + [target.with_name(f"{target.stem}_{i:05d}{target.suffix}")
                             for i in range(1, MAX_COUNTER + 1)]
    for candidate in candidates:
        if candidate.is_file() and not candidate.is_symlink() and same_content(tmp, candidate):
            tmp.unlink()
            return candidate
        if _claim(tmp, candidate):
            return candidate
    tmp.unlink()
    raise PathRefused(f"{target.name}: {MAX_COUNTER} numbered files of this name exist in {target.parent}; "
                      "choose another name.")


def same_content(a: Path, b: Path) -> bool:
    """Whether file `a` holds the same data as `b`. When `b` is a .safetensors file the headers are compared as
    mappings (the library writes its metadata in no fixed order) and the tensor bytes exactly; other files are
    compared byte for byte."""
    if b.suffix != ".safetensors":
        return filecmp.cmp(a, b, shallow=False)
    if a.stat().st_size != b.stat().st_size:
        return False
    try:
        with open(a, "rb") as fa, open(b, "rb") as fb:
            headers = []
            for f in (fa, fb):
                (n,) = struct.unpack("<Q", f.read(8))
                if n > 100_000_000:
                    raise ValueError("not a safetensors header")
                headers.append(json.loads(f.read(n)))
            if headers[0] != headers[1]:
                return False
            while True:
                x, y = fa.read(1 << 20), fb.read(1 << 20)
                if x != y:
                    return False
                if not x:
                    return True
    except (ValueError, struct.error):  # not a readable safetensors file after all
        return filecmp.cmp(a, b, shallow=False)


def _claim(tmp: Path, candidate: Path) -> bool:
    """Atomically give `tmp` the name `candidate` if nothing has that name (a hard link fails on an existing
    name, so two writers never both win); folders whose file system has no hard links fall back to an exclusive
    create followed by a rename."""
    try:
        os.link(tmp, candidate)
    except FileExistsError:
        return False
    except OSError:
        try:
            os.close(os.open(candidate, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
        except FileExistsError:
            return False
        os.replace(tmp, candidate)
        return True
    tmp.unlink()
    return True
