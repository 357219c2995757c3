"""Names every module of the emulator shares: the JSON type, the outage modes, the control
API's prefix, the repository root and the patch content types."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

JsonDict = dict[str, Any]
OutageMode = Literal["refuse", "503"]

CONTROL_PREFIX = "/_emulator/"
REPO_ROOT = Path(__file__).resolve().parents[3]

MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
