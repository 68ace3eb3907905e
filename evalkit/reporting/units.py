"""Counts as people read them: parameters (7.62B, 283.97M, 209.73K), bytes (6.70 GB), and the scale of
an axis, so a tiny model's branches do not all print as 0.00B.
"""

from __future__ import annotations

_SCALES = ((1e9, "B", "GB", "billions"), (1e6, "M", "MB", "millions"), (1e3, "K", "KB", "thousands"))


def format_params(n: float) -> str:
    """A parameter count as 7.62B, 283.97M, 209.73K, or the plain count below a thousand."""
    scale = axis_scale(n)
    return str(int(n)) if scale[0] == 1.0 else f"{n / scale[0]:.2f}{scale[1]}"


def format_bytes(n: float) -> str:
    """A byte count as 6.70 GB, 1.00 MB, 2.05 KB, 512 B."""
    for scale, _, unit, _ in _SCALES:
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n:.0f} B"


def axis_scale(largest: float) -> tuple[float, str, str]:
    """(divisor, suffix, word) for counts up to `largest`: (1e9, "B", "billions") ... (1.0, "", "count")."""
    for scale, suffix, _, word in _SCALES:
        if largest >= scale:
            return scale, suffix, word
    return 1.0, "", "count"
