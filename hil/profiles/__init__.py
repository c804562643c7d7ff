"""Load profiles: named, seeded, source-cited demand generators."""
from hil.profiles.ai import ai_training
from hil.profiles.base import Profile

# Name -> generator(duration_s, dt_s, **params). The CLI and the rig look profiles up here.
PROFILES = {
    "ai-training": ai_training,
}

__all__ = ["PROFILES", "Profile", "ai_training"]
