"""GGUF model files: reading the header, and converting to a cached plain checkpoint.

llama.cpp's GGUF files hold a model (often quantised) and its tokenizer. transformers
de-quantises those of the architectures it knows (``from_pretrained(folder, gguf_file=)``);
:func:`cached_gguf_checkpoint` does that once and keeps a safetensors copy in a cache folder
keyed by the file's hash and the transformers version (a copy saved by another transformers
version can load silently wrong). Before converting, :func:`check_gguf_model` reads the
header only (never the tensors, and token lists are skipped unparsed: milliseconds), so a
file that is not GGUF, a control vector, one part of a split model or an architecture that
transformers cannot read fails at once with one line, and nothing is written to the cache.

Upstream assumptions: ``from_pretrained(..., gguf_file=)`` de-quantises, and
``model.hf_quantizer.remove_quantization_config(model)`` makes the saved copy a plain
checkpoint (tested in ``tests/test_upstream.py``); the supported architectures are listed in
``transformers.modeling_gguf_pytorch_utils.GGUF_SUPPORTED_ARCHITECTURES`` (when absent, the
header check lets any architecture through and the conversion's own error is reworded).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import tempfile
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

from transformers import AutoModelForCausalLM, AutoTokenizer
from transformers import __version__ as transformers_version

from steerlab.checkpoints import add_legacy_config_keys, save_checkpoint
from steerlab.errors import ModelLoadError
from steerlab.provenance import atomic_write, sha256_of_file, sha256_of_records

SOURCE_FILE = "steerlab_gguf_source.json"
"""Written into each converted folder: the GGUF file it came from and the transformers version."""


GGUF_MAGIC = b"GGUF"
# metadata value type -> struct format (8: string and 9: array are read apart)
_GGUF_SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q"}
_GGUF_SCALARS.update({11: "q", 12: "d"})
_GGUF_STRING, _GGUF_ARRAY = 8, 9


def check_gguf_magic(path: Path) -> None:
    """Refuse, with one line, a file that does not start with the GGUF magic bytes."""
    try:
        with path.open("rb") as handle:
            magic = handle.read(4)
    except OSError as exc:
        raise ModelLoadError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if magic != GGUF_MAGIC:
        raise ModelLoadError(f"{path}: not a GGUF file (it starts with {magic!r}, not b'GGUF')")


def _read(handle: BinaryIO, fmt: str) -> Any:
    size = struct.calcsize("<" + fmt)
    data = handle.read(size)
    if len(data) != size:
        raise EOFError
    return struct.unpack("<" + fmt, data)[0]


def _read_value(handle: BinaryIO, kind: int, keep: bool) -> Any:
    """One metadata value; arrays (token lists...) are skipped, never parsed."""
    if kind in _GGUF_SCALARS:
        return _read(handle, _GGUF_SCALARS[kind])
    if kind == _GGUF_STRING:
        length = _read(handle, "Q")
        if not keep:
            return handle.seek(length, os.SEEK_CUR)
        data = handle.read(length)
        if len(data) != length:
            raise EOFError
        return data.decode("utf-8")
    if kind == _GGUF_ARRAY:
        item, count = _read(handle, "I"), _read(handle, "Q")
        if item in _GGUF_SCALARS:
            return handle.seek(count * struct.calcsize("<" + _GGUF_SCALARS[item]), os.SEEK_CUR)
        for _ in range(count):
            _read_value(handle, item, keep=False)
        return None
    raise ValueError(f"unknown metadata value type {kind}")


def gguf_metadata(path: Path, keys: Collection[str]) -> dict[str, Any]:
    """The scalar or string values of ``keys`` in a GGUF file's header (absent keys left out).

    Raises:
        ModelLoadError: naming the file, if it is not GGUF (v2 or v3, little-endian) or its
            header is truncated or corrupt.
    """
    check_gguf_magic(path)
    found: dict[str, Any] = {}
    with path.open("rb") as handle:
        try:
            handle.seek(4)
            version = _read(handle, "I")
            if version not in (2, 3):
                raise ModelLoadError(f"{path}: GGUF version {version} is not supported (2 or 3)")
            _read(handle, "Q")  # tensor count
            for _ in range(_read(handle, "Q")):
                key = handle.read(_read(handle, "Q")).decode("utf-8")
                value = _read_value(handle, _read(handle, "I"), keep=key in keys)
                if key in keys:
                    found[key] = value
        except (EOFError, ValueError, UnicodeDecodeError, MemoryError, OverflowError) as exc:
            raise ModelLoadError(f"{path}: truncated or corrupt GGUF header ({exc})") from None
    return found


def gguf_supported_architectures() -> tuple[str, ...]:
    """The GGUF architectures the installed transformers de-quantises (empty if unknown)."""
    try:
        from transformers.modeling_gguf_pytorch_utils import GGUF_SUPPORTED_ARCHITECTURES
    except ImportError:
        return ()
    return tuple(a for a in GGUF_SUPPORTED_ARCHITECTURES if a not in ("general", "tokenizer"))


def _architecture_supported(architecture: str, supported: Collection[str]) -> bool:
    # transformers' own renames (llama.cpp's "qwen2moe", "gpt-oss", "t5encoder"...).
    names = {architecture, architecture.replace("-", "_"), re.sub(r"moe$", "_moe", architecture)}
    if "t5" in architecture:
        names.add("t5")
    return not supported or bool(names & set(supported))


def unsupported_gguf(path: Path, architecture: str) -> ModelLoadError:
    """The one-line error for an architecture transformers cannot read, listing those it can."""
    supported = ", ".join(gguf_supported_architectures()) or "see its documentation"
    return ModelLoadError(
        f"{path}: transformers {transformers_version} cannot read GGUF models of architecture "
        f"{architecture!r} (it reads: {supported})"
    )


def check_gguf_model(path: Path) -> str:
    """Check from its header that a GGUF file is a model transformers can de-quantise.

    Returns:
        Its ``general.architecture``, e.g. ``"llama"``.

    Raises:
        ModelLoadError: one line naming the file: not GGUF, a control vector, one part of a
            split model, or an architecture the installed transformers cannot read.
    """
    meta = gguf_metadata(path, ("general.architecture", "split.count"))
    architecture = meta.get("general.architecture")
    if not isinstance(architecture, str):
        raise ModelLoadError(f"{path}: GGUF file without general.architecture: not a model")
    if architecture == "controlvector":
        raise ModelLoadError(
            f"{path}: a GGUF control vector, not a model (import it as a steering vector)"
        )
    if int(meta.get("split.count") or 1) > 1:
        raise ModelLoadError(
            f"{path}: one part of a split GGUF model; merge the parts first "
            "(llama-gguf-split --merge FIRST-PART OUT.gguf)"
        )
    if not _architecture_supported(architecture, gguf_supported_architectures()):
        raise unsupported_gguf(path, architecture)
    return architecture


def gguf_cache_key(gguf: Path, cache: Path) -> str:
    """The first 16 hex digits of the file's sha256 (what its cache folder is keyed by).

    Args:
        gguf: the GGUF file.
        cache: the cache root; stamps go to ``cache/hashes``.
    """
    # Hashing ~100 MB takes a fraction of a second (a 5 GB model ~10 s); a stamp keyed on the
    # file's absolute path, size and mtime spares that on every later load. The stamp is
    # written atomically: a concurrent reader never sees half a digest.
    stat = gguf.stat()
    where = sha256_of_records([str(gguf.resolve())])[:12]
    stamp = cache / "hashes" / f"{gguf.name}.{where}.{stat.st_size}.{stat.st_mtime_ns}"
    if stamp.is_file():
        return stamp.read_text().strip()
    digest = sha256_of_file(gguf)[:16]
    with atomic_write(stamp) as handle:
        handle.write(digest)
    return digest


def complete_checkpoint(folder: Path) -> bool:
    """Whether ``folder`` holds a config and all its weights (one file, or a shard index)."""
    weights = ("model.safetensors", "model.safetensors.index.json")
    return (folder / "config.json").is_file() and any((folder / w).is_file() for w in weights)


@contextmanager
def _named_gguf(gguf: Path) -> Iterator[Path]:
    """``gguf``, or a ``.gguf``-named link to it: transformers reads other names as pickles."""
    if gguf.name.lower().endswith(".gguf"):
        yield gguf
        return
    with tempfile.TemporaryDirectory(prefix="steerlab-gguf-") as folder:
        link = Path(folder) / f"{gguf.name}.gguf"
        link.symlink_to(gguf.resolve())
        yield link


def convert_gguf(gguf: Path, folder: Path) -> Path:
    """De-quantise a GGUF file into a plain safetensors checkpoint folder, atomically.

    The checkpoint is written to a temporary folder beside ``folder`` and renamed into place,
    so concurrent first loads never see, or leave, half a checkpoint.

    Args:
        gguf: the ``.gguf`` file (model and tokenizer).
        folder: where to write the checkpoint; left untouched if it already exists (another
            process finished first).

    Returns:
        ``folder``.
    """
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        with _named_gguf(gguf) as named:
            model = AutoModelForCausalLM.from_pretrained(named.parent, gguf_file=named.name)
            tokenizer = AutoTokenizer.from_pretrained(named.parent, gguf_file=named.name)
        quantizer = getattr(model, "hf_quantizer", None)
        if quantizer is not None:
            # Without this the saved config claims GGUF quantisation and the copy won't load.
            quantizer.remove_quantization_config(model)
        save_checkpoint(model, tokenizer, tmp)  # with the keys transformers 4.x reads
        source = {"gguf": str(gguf.resolve()), "transformers": transformers_version}
        (tmp / SOURCE_FILE).write_text(json.dumps(source, indent=2) + "\n")
        try:
            os.replace(tmp, folder)
        except OSError:  # another process renamed its copy into place first
            if not complete_checkpoint(folder):
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


def cached_gguf_checkpoint(gguf: Path, cache: Path, name: str | None = None) -> Path:
    """Folder of the cached safetensors copy of a GGUF model file, converted on first use.

    The folder, ``cache/models/NAME-HASH-transformers-VERSION``, is named by ``name``
    (default: the file's stem), the file's hash and the transformers version; a copy cached
    from the same bytes under another name is used too. A cached copy is used as it is: no
    second conversion, and no hashing either once the file's stamp (path, size, mtime) is in
    ``cache/hashes``; only the header is read again.

    Args:
        gguf: the GGUF model file.
        cache: the cache root (``steerlab.models.cache_dir()``).
        name: the folder's name prefix.

    Raises:
        ModelLoadError: naming the file, if it is not a GGUF model transformers can read
            (then nothing is written to the cache).
    """
    check_gguf_model(gguf)  # before anything is written (and the header only: milliseconds)
    label = re.sub(r"[^a-z0-9._-]+", "-", (name or gguf.stem).lower()).strip("-.")[:64]
    try:
        keyed = f"{gguf_cache_key(gguf, cache)}-transformers-{transformers_version}"
    except OSError as exc:
        raise ModelLoadError(
            f"{cache}: cannot write the model cache ({exc.strerror or exc}); "
            "set STEERLAB_CACHE to a writable folder"
        ) from exc
    folder = cache / "models" / f"{label or 'model'}-{keyed}"
    # The same bytes under another name (a copy, the embedded file by its path) share a copy.
    same = sorted((cache / "models").glob(f"*-{keyed}")) if (cache / "models").is_dir() else []
    for cached in [folder, *same]:
        if not cached.name.startswith(".") and complete_checkpoint(cached):
            add_legacy_config_keys(cached)  # a copy cached before they were written
            return cached
    try:
        return convert_gguf(gguf, folder)
    except (OSError, ValueError, KeyError, NotImplementedError, RuntimeError) as exc:
        text = str(exc).strip()
        unsupported = re.search(r"architecture (\S+) is not supported", text)
        if unsupported:
            raise unsupported_gguf(gguf, unsupported.group(1)) from exc
        first = text.splitlines()[0] if text else type(exc).__name__
        raise ModelLoadError(f"{gguf}: cannot convert this GGUF model: {first}") from exc
