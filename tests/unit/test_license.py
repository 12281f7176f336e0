"""The license file is the one pyproject.toml declares (PEP 639 metadata)."""

from __future__ import annotations

import hashlib
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# sha256 of the GNU GPL version 2 text as the FSF publishes it (Debian:
# /usr/share/common-licenses/GPL-2), with the Franklin Street address.
GPL2_SHA256 = "8177f97513213526df2cf6184d8ff986c675afb514d4e68a404010521b880643"


def test_license_file_is_the_gpl2_text_the_metadata_declares():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["license"] == "GPL-2.0-only"
    assert project["license-files"] == ["LICENSE"]
    text = (REPO / "LICENSE").read_bytes()
    assert hashlib.sha256(text).hexdigest() == GPL2_SHA256
    assert b"GNU GENERAL PUBLIC LICENSE\n                       Version 2, June 1991\n" in text
