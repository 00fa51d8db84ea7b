"""Energy from the hardware's own activity counts: technology tables, per-architecture event
maps, and the estimate (``estimate``)."""
