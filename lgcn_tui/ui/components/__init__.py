"""The dashboard's panes; each has ``show(snapshot)`` and draws only from it."""
