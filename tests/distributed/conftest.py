"""Distributed tests: the job scripts next to this file are importable (single-process reference runs)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
