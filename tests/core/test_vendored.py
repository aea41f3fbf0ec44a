"""Vendored static files are exactly the ones their README records (version, source and
checksum): a changed byte fails here instead of shipping unnoticed."""

import hashlib
import re
from pathlib import Path

import pytest

VENDOR = Path(__file__).resolve().parents[2] / "apps" / "core" / "static" / "core" / "vendor"
ROW = re.compile(r"^\| (\S+) \| ([0-9a-f]{64}) \|$", re.M)


def recorded():
    for readme in sorted(VENDOR.glob("*/README.md")):
        for name, digest in ROW.findall(readme.read_text()):
            yield readme.parent / name, digest


@pytest.mark.parametrize(("path", "digest"), list(recorded()), ids=lambda v: str(v)[-40:])
def test_vendored_file_matches_its_recorded_checksum(path, digest):
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest


def test_every_vendored_file_is_recorded():
    files = {p for p in VENDOR.rglob("*") if p.is_file() and p.name != "README.md"}
    assert files and files == {path for path, _ in recorded()}
