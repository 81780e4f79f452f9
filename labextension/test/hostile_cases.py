"""Hostile payloads through the server's own layers, for hostile.test.ts.

    .venv/bin/python labextension/test/hostile_cases.py > hostile.json

prints, for each subprotocol and path (live, history), the frames the server sent one
subscriber when devices published the payloads of tests/core/hostile.py among good ones,
and the rows the Python client read from them (``[offset, topic, payload as JSON text,
error]``). hostile.test.ts feeds the same frames to the TypeScript client and requires
the same rows: every reading once, the poison ones flagged.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.core.hostile import cases_for_typescript  # noqa: E402

if __name__ == "__main__":
    print(json.dumps(cases_for_typescript(), ensure_ascii=False))
