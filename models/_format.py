"""Constants that identify slumwatch checkpoint files (shared by weights and checkpoint code)."""

from __future__ import annotations

CHECKPOINT_FORMAT = "slumwatch-checkpoint"
CHECKPOINT_FORMAT_VERSION = 1
FORMAT_KEY = "format"
MODEL_STATE_KEY = "model_state"
