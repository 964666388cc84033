"""How the client names files: safe S3 key names, and local output paths."""

from __future__ import annotations

from pathlib import Path, PurePosixPath


def output_path(output_dir: Path, input_name: str, label: str, output_key: str) -> Path:
    """DIR/<stem>-<label><ext>: the input's stem, the output's extension (from its key)."""
    return output_dir / f"{Path(input_name).stem}-{label}{PurePosixPath(output_key).suffix}"


def safe_name(name: str) -> str:
    """A file name that is safe as the last part of an S3 key."""
    cleaned = "".join(c if c.isalnum() or c in "._-" else "_" for c in name)
    return cleaned.lstrip(".") or "file"
