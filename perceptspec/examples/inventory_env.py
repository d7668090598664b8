"""A small gymnasium env with the spaces of seed Examples 2 and 4, for composing and rolling out those models.

An 8x8 grid drawn as a 64x64 RGB screen (agent red, goal green), plus a 16-slot inventory. Each step the agent
moves (`action_move`: up, down, left, right) and may use items (`action_use`: 16 binary choices): reaching the goal
gives +1 and moves the goal, each step costs 0.01, using an item you hold that matches the goal's slot gives +0.1.
Observations stack the last `history` frames on a leading time axis: screen (T, 3, 64, 64), inventory (T, 16).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

GRID, CELL, ITEMS = 8, 8, 16
MOVES = ((-1, 0), (1, 0), (0, -1), (0, 1))

Obs = dict[str, Any]


class InventoryGridEnv(gym.Env[Obs, dict[str, Any]]):
    """Dict observations with a time axis and a Dict action of a categorical and a multi-binary head."""

    def __init__(self, history: int = 4, max_steps: int = 64) -> None:
        self.history, self.max_steps = history, max_steps
        self.observation_space = gym.spaces.Dict({
            "observation_screen": gym.spaces.Box(0.0, 1.0, (history, 3, GRID * CELL, GRID * CELL), np.float32),
            "observation_inventory": gym.spaces.Box(0.0, 1.0, (history, ITEMS), np.float32),
        })
        self.action_space = gym.spaces.Dict({
            "action_move": gym.spaces.Discrete(len(MOVES)),
            "action_use": gym.spaces.MultiBinary(ITEMS),
        })
        self._frames: list[tuple[np.ndarray, np.ndarray]] = []

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Obs, dict[str, Any]]:
        super().reset(seed=seed)
        self._agent = self.np_random.integers(0, GRID, 2)
        self._goal = self.np_random.integers(0, GRID, 2)
        self._inventory = (self.np_random.random(ITEMS) < 0.5).astype(np.float32)
        self._steps = 0
        self._frames = [self._frame()] * self.history
        return self._obs(), {}

    def step(self, action: dict[str, Any]) -> tuple[Obs, float, bool, bool, dict[str, Any]]:
        move = MOVES[int(action["action_move"])]
        self._agent = np.clip(self._agent + move, 0, GRID - 1)
        used = np.asarray(action["action_use"], dtype=bool)
        slot = int(self._goal[0] * GRID + self._goal[1]) % ITEMS
        reward = -0.01 + (0.1 if used[slot] and self._inventory[slot] > 0 else 0.0)
        self._inventory[used] = 0.0
        if (self._agent == self._goal).all():
            reward += 1.0
            self._goal = self.np_random.integers(0, GRID, 2)
            self._inventory = np.maximum(self._inventory, (self.np_random.random(ITEMS) < 0.3).astype(np.float32))
        self._steps += 1
        self._frames = [*self._frames[1:], self._frame()]
        return self._obs(), reward, False, self._steps >= self.max_steps, {}

    def _frame(self) -> tuple[np.ndarray, np.ndarray]:
        screen = np.zeros((3, GRID * CELL, GRID * CELL), np.float32)
        for channel, (row, col) in ((0, self._agent), (1, self._goal)):
            screen[channel, row * CELL:(row + 1) * CELL, col * CELL:(col + 1) * CELL] = 1.0
        return screen, self._inventory.copy()

    def _obs(self) -> Obs:
        return {"observation_screen": np.stack([f[0] for f in self._frames]),
                "observation_inventory": np.stack([f[1] for f in self._frames])}
