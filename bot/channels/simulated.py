"""The simulator's own address space: simulated contacts live apart from real ones.

Anyone at the simulator may type a real woman's number. The service therefore files every simulated
address under a prefix that no real channel can produce (real addresses are "+<digits>" or
"tg:<digits>"), so its keyed hash and sealed form never equal hers: the simulator cannot read her screen,
erase her, subscribe her or opt her out. Whatever is written to a simulated address stays in the outbox
for the simulator to read; the dispatcher refuses to hand it to a real sender.
"""

from __future__ import annotations

PREFIX = "sim:"


def simulated_address(address: str) -> str:
    """A normalised address moved into the simulator's space (unchanged if it is there already)."""
    return address if is_simulated(address) else PREFIX + address


def is_simulated(address: str) -> bool:
    """Whether an (opened) address belongs to the simulator, never to a real channel."""
    return address.startswith(PREFIX)
