"""Serving sets the garbage collector once the app is built (api/heap.py): what start-up made is kept out
of later collections, and young objects are collected less often."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from api.heap import YOUNG_THRESHOLD
from tests.conftest import TEST_ENCRYPTION_KEY, TEST_HASH_KEY

PROBE = """
import gc
from api.app import create_app
from bot.config import Settings
from api.heap import settle
before = gc.get_threshold()[0], gc.get_freeze_count()
app = create_app(Settings(env="development", **KEYS, database_url=URL, var_dir=VAR))
settle()
print(*before, gc.get_threshold()[0], gc.get_freeze_count())
"""


def test_settling_freezes_what_start_up_made_and_collects_young_objects_less_often(tmp_path: Path) -> None:
    # In a process of its own: freezing the test process would keep every later test's garbage.
    keys = {"encryption_key": TEST_ENCRYPTION_KEY, "hash_key": TEST_HASH_KEY}
    probe = f"KEYS = {keys!r}\nURL = 'sqlite:///{tmp_path}/h.db'\nVAR = '{tmp_path}'\n" + PROBE
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    young_before, frozen_before, young_after, frozen_after = map(int, done.stdout.split())
    assert (young_before, frozen_before) == (700, 0)  # Python's own
    assert young_after == YOUNG_THRESHOLD
    assert (
        frozen_after > 100_000
    )  # the flows, translations, templates and tables, out of the collector's sight
