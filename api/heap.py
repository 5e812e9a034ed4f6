"""The garbage collector, set for serving.

A turn makes many short-lived objects (rows, statements, replies), and Python's cyclic collector counts
them: with its defaults it looks at young objects every 700 allocations, and every few of those looks
through everything the process holds, which in a served app is mostly what start-up made (flows,
translations, templates, table definitions) and lives as long as the process. Measured in
bench/webhooks.py, collection took 10-15% of a webhook's CPU.

`settle` is called once the app is built, before serving: what exists then is moved out of the
collector's sight (`gc.freeze`), and young collections run less often. Memory still goes back as soon as
an object is no longer used (reference counting does that); only cycles wait a little longer.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 10_000  # allocations between collections of young objects (Python's default: 700)


def settle() -> None:
    """Before serving: collect once, keep what start-up made out of later collections, collect less often."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
