"""Colours, picked from the xterm-256 palette so they read the same over SSH without truecolor."""

from __future__ import annotations

GROUP_COLOURS = {"user": "#ffaf00", "item": "#5fd7ff"}
GROUP_PLAN_COLOURS = {"user": "#875f00", "item": "#005f87"}
CLIP = "#ff5f5f"
LOSS_EMA = "#87ff87"
LOSS_RAW = "#626262"
NOW = "#808080"
OVERLAY = "#d787af"
MUTED = "#8a8a8a"

STATE_COLOURS = {
    "starting": "#8a8a8a",
    "running": "#87ff87",
    "paused": "#ffd75f",
    "evaluating": "#5fd7ff",
    "done": "#87afff",
    "stopped": "#87afff",
    "error": "#ff5f5f",
    "stopping": "#ffd75f",
}

LEVEL_COLOURS = {"warning": "#ffd75f", "error": "#ff5f5f"}
KIND_COLOURS = {"checkpoint": "#5fd7ff", "lr_changed": "#d787ff", "eval": "#87ff87", "command": "#8a8a8a"}
