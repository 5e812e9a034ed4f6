"""The console's alert for an urgent case: a short two-note chime, made here rather than downloaded.

`api/static/urgent.wav` is this module's output (a test checks it): `python -m api.console.sound` writes it
again after a change.
"""

from __future__ import annotations

import io
import math
import struct
import wave
from pathlib import Path

RATE = 16_000
NOTES = ((880.0, 0.16), (0.0, 0.05), (1318.5, 0.26))  # A5, a breath, E6: noticeable, not a siren
VOLUME = 0.45
PATH = Path(__file__).resolve().parent.parent / "static" / "urgent.wav"


def chime() -> bytes:
    """The chime as a mono 16-bit WAV file."""
    samples = bytearray()
    for frequency, seconds in NOTES:
        count = int(RATE * seconds)
        for n in range(count):
            fade = min(1.0, n / (RATE * 0.01), (count - n) / (RATE * 0.06))  # no clicks at the edges
            value = VOLUME * fade * math.sin(2 * math.pi * frequency * n / RATE) if frequency else 0.0
            samples += struct.pack("<h", round(value * 32767))
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(RATE)
        wav.writeframes(bytes(samples))
    return out.getvalue()


if __name__ == "__main__":
    PATH.write_bytes(chime())
