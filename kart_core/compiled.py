"""The digest of a compiled module (a C, Cython or pybind11 extension: a ``.so``) as the process runs it.

kart_core.fingerprint counts a compiled project module by this digest, since its code has no bytecode to
read. Two rules make it describe the code that runs:

- **Loadable content only.** An ELF64 little-endian file (Linux x86-64 and aarch64) counts by the
  sections the loader maps (``SHF_ALLOC``: code, read-only data, data, dynamic symbols; their names,
  types, flags, addresses and bytes) and its program headers, not by its debug sections: Python's own
  ``CFLAGS`` hold ``-g``, so ``build_ext --inplace`` records the build folder (DWARF ``comp_dir``) and the
  same source built in two checkouts gave two file digests. The GNU build-id note is left out too (the
  linker computes it over the whole file, debug sections included). Any other file (another ELF class,
  Mach-O, a ``.pyd``, a damaged header) counts by all its bytes.
- **The file this process loaded.** An extension module cannot be imported again: a process keeps
  running the build it loaded when the file is rebuilt in place or removed (a Jupyter kernel, any
  process running KartRunner twice). The first read in the process is checked against the loader's own
  record (``/proc/self/maps``: the mapping of that path, not marked ``(deleted)``); later reads compare
  the file's stamp (inode, size, modification and status-change times) with the first read's and, when
  it changed, its digest. A file that is no longer the one loaded is *stale*: the digest of the loaded
  build when this process read it before, else ``compiled:stale``, and never the new file's digest.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import struct
import time
import types

from kart_core.provenance import is_extension

_RACY_NS = 2_000_000_000  # a file changed this close to its read may change again within the same times
_SHF_ALLOC = 0x2
_SHT_NOBITS = 8  # .bss: memory the loader zeroes, no bytes in the file
_SECTION = struct.Struct("<IIQQQQIIQQ")  # Elf64_Shdr: name, type, flags, addr, offset, size, link, info, align, entsize
_LEFT_OUT = {b".note.gnu.build-id"}


@dataclasses.dataclass(frozen=True)
class CompiledDigest:
    """What a compiled module counts as.

    Attributes:
        digest: ``compiled:<md5 hex>`` of the loadable content of the build the process runs;
            ``compiled:stale`` when that build is gone and was never read in this process.
        stale: "" when the file at the module's path is the build the process runs; else why it is not
            (``"rebuilt after this process loaded it"``, ``"removed after this process loaded it"``).
    """

    digest: str
    stale: str = ""


@dataclasses.dataclass(frozen=True)
class _Read:
    stamp: tuple[int, int, int, int]  # inode, size, mtime_ns, ctime_ns of the file read
    digest: str  # "" when the file at the path was not the loaded build at the first look
    racy: bool  # changed within _RACY_NS of the read: read again while the stamp stays


_READS: dict[str, _Read] = {}  # module file path -> the first read of it in this process (updated when equal)


def compiled_digest(module: types.ModuleType | None) -> CompiledDigest | None:
    """The digest of the compiled module ``module`` as this process runs it; None for any other module.

    Read once per process per file version. Follows gokart's idea of a task's code version (a string that
    changes when the code does), for code gokart cannot read.

    Raises:
        nothing: an unreadable or missing file gives a stale digest.
    """
    if module is None or not is_extension(module):
        return None
    path = str(module.__file__)
    known = _READS.get(path)
    try:
        status = os.stat(path)
    except OSError:
        return _stale(known, "removed after this process loaded it")
    stamp = (status.st_ino, status.st_size, status.st_mtime_ns, status.st_ctime_ns)
    if known is not None and known.stamp == stamp and not known.racy:
        return CompiledDigest(known.digest) if known.digest else _stale(known, "rebuilt after this process loaded it")
    if known is None and _loaded_file(path, status) is False:
        _READS[path] = known = _Read(stamp, "", racy=False)
        return _stale(known, "rebuilt after this process loaded it")
    try:
        found = loadable_digest(path)
    except OSError:
        return _stale(known, "removed after this process loaded it")
    racy = time.time_ns() - max(status.st_mtime_ns, status.st_ctime_ns) < _RACY_NS
    if known is None:
        _READS[path] = _Read(stamp, found, racy)
    elif found != known.digest:  # another build at the path: the process still runs the one it read first
        return _stale(known, "rebuilt after this process loaded it")
    else:  # the same content again (rewritten, restored, touched): still the code that runs
        _READS[path] = _Read(stamp, found, racy)
    return CompiledDigest(found)


def _stale(known: _Read | None, why: str) -> CompiledDigest:
    return CompiledDigest(known.digest if known is not None and known.digest else "compiled:stale", why)


def _loaded_file(path: str, status: os.stat_result) -> bool | None:
    """Whether the file at ``path`` (``status``) is the one the process mapped from that path: False when
    the only mappings of that path are of a removed or replaced file, None when the loader's record cannot
    tell (not Linux, no mapping named by that path)."""
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="surrogateescape") as maps:
            lines = maps.read().splitlines()
    except OSError:
        return None
    real = os.path.realpath(path)
    found: bool | None = None
    for line in lines:
        fields = line.split(maxsplit=5)
        if len(fields) < 6 or not fields[5].startswith(real):
            continue
        if fields[5] == f"{real} (deleted)":
            found = found or False
        elif fields[5] == real:
            major, _, minor = fields[3].partition(":")
            same_device = (int(major, 16), int(minor, 16)) == (os.major(status.st_dev), os.minor(status.st_dev))
            # on another device number (overlayfs maps the underlying file) the inode cannot be compared
            if not same_device or int(fields[4]) == status.st_ino:
                return True
            found = False
    return found


def loadable_digest(path: str) -> str:
    """``compiled:<md5 hex>`` of the file's loadable content (module docstring); of all its bytes when it is
    no ELF64 little-endian file or its section headers do not parse.

    Raises:
        OSError: the file cannot be read.
    """
    with open(path, "rb") as file:
        data = file.read()
    hasher = hashlib.md5(usedforsecurity=False)
    parts = _loadable_parts(data)
    if parts is None:
        hasher.update(data)
        return f"compiled:{hasher.hexdigest()}"
    for part in parts:
        hasher.update(len(part).to_bytes(8, "little"))
        hasher.update(part)
    return f"compiled:elf:{hasher.hexdigest()}"


def _loadable_parts(data: bytes) -> list[bytes] | None:
    """The ELF header's fields that say how to load, the program headers and, for each ``SHF_ALLOC``
    section but the build-id note, its name, header fields (no file offset) and bytes; None when ``data``
    is no ELF64 little-endian file whose tables lie inside it."""
    if len(data) < 64 or data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        return None
    e_type, e_machine = struct.unpack_from("<HH", data, 16)
    e_entry, e_phoff, e_shoff = struct.unpack_from("<QQQ", data, 24)
    e_phentsize, e_phnum, e_shentsize, e_shnum, e_shstrndx = struct.unpack_from("<HHHHH", data, 54)
    if e_shnum == 0 or e_shstrndx >= e_shnum or e_shentsize < _SECTION.size:
        return None  # no section table, or an extended numbering (>= 0xff00 sections): read it whole
    if e_shoff + e_shnum * e_shentsize > len(data) or e_phoff + e_phnum * e_phentsize > len(data):
        return None
    headers = [_SECTION.unpack_from(data, e_shoff + index * e_shentsize) for index in range(e_shnum)]
    names_offset, names_size = headers[e_shstrndx][4], headers[e_shstrndx][5]
    if names_offset + names_size > len(data):
        return None
    names = data[names_offset : names_offset + names_size]
    parts = [struct.pack("<HHQ", e_type, e_machine, e_entry), data[e_phoff : e_phoff + e_phnum * e_phentsize]]
    for sh_name, sh_type, sh_flags, sh_addr, sh_offset, sh_size, _, _, _, sh_entsize in headers:
        if not sh_flags & _SHF_ALLOC:
            continue
        end = names.find(b"\0", sh_name)
        name = names[sh_name : end if end >= 0 else len(names)]
        if name in _LEFT_OUT:
            continue
        body = b""
        if sh_type != _SHT_NOBITS:
            if sh_offset + sh_size > len(data):
                return None
            body = data[sh_offset : sh_offset + sh_size]
        parts += [name, struct.pack("<IQQQQ", sh_type, sh_flags, sh_addr, sh_size, sh_entsize), body]
    return parts
