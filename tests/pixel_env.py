"""A tiny image env for the command line's tests, importable by path ('tests.pixel_env:PixelEnv') and without
torch: channel-last uint8 pixels, as most image envs return them, of any size."""

from __future__ import annotations

import gymnasium as gym
import numpy as np


class PixelEnv(gym.Env[np.ndarray, np.int64]):
    """(height, width, 3) uint8 frames and three actions: only its spaces are read (the CLI composes from them)."""

    def __init__(self, height: int = 40, width: int = 48) -> None:
        self.observation_space = gym.spaces.Box(0, 255, (height, width, 3), np.uint8)
        self.action_space = gym.spaces.Discrete(3)
