"""The table of observation spaces the composer, the command line, SB3 and TensorDict are held to (issue #17), and
an env of each, importable by path and without torch ('tests.space_env:SpaceEnv', `--env-kwargs '{space: NAME}'`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np

Shapes = Mapping[str, Sequence[int]]
IMAGE_LAST = gym.spaces.Box(0, 255, (12, 10, 3), np.uint8)
IMAGE_FIRST = gym.spaces.Box(0, 255, (3, 12, 10), np.uint8)
NESTED = gym.spaces.Dict({
    "agent": gym.spaces.Dict({"position": gym.spaces.Box(-1.0, 1.0, (2,), np.float32), "cell": gym.spaces.Discrete(5)}),
    "camera": IMAGE_LAST,
    "inventory": gym.spaces.Tuple((gym.spaces.MultiBinary(3), gym.spaces.MultiDiscrete([2, 3]))),
})

#: space -> (what the network functions are given, what the modules read)
SPACES: dict[str, tuple[gym.Space[Any], Shapes, Shapes]] = {
    "discrete": (gym.spaces.Discrete(6), {"observation": (6,)}, {"observation": ()}),
    "multi_discrete": (gym.spaces.MultiDiscrete([3, 2, 4]), {"observation": (9,)}, {"observation": (3,)}),
    "multi_binary": (gym.spaces.MultiBinary([2, 3]), {"observation": (2, 3)}, {"observation": (2, 3)}),
    "box_rank_0": (gym.spaces.Box(-1.0, 1.0, (), np.float32), {"observation": (1,)}, {"observation": ()}),
    "box_rank_1": (gym.spaces.Box(-1.0, 1.0, (4,), np.float32), {"observation": (4,)}, {"observation": (4,)}),
    "box_rank_2": (gym.spaces.Box(-1.0, 1.0, (3, 4), np.float64), {"observation": (3, 4)}, {"observation": (3, 4)}),
    "box_of_ints": (gym.spaces.Box(0, 9, (2, 2), np.int64), {"observation": (2, 2)}, {"observation": (2, 2)}),
    "image_channel_last": (IMAGE_LAST, {"observation": (3, 12, 10)}, {"observation": (12, 10, 3)}),
    "image_channel_first": (IMAGE_FIRST, {"observation": (3, 12, 10)}, {"observation": (3, 12, 10)}),
    "tuple": (gym.spaces.Tuple((gym.spaces.Discrete(4), gym.spaces.Box(-1.0, 1.0, (2,), np.float32))),
              {"observation/0": (4,), "observation/1": (2,)}, {"observation/0": (), "observation/1": (2,)}),
    "nested_dict": (NESTED, {"agent/cell": (5,), "agent/position": (2,), "camera": (3, 12, 10), "inventory/0": (3,),
                             "inventory/1": (5,)},
                    {"agent/cell": (), "agent/position": (2,), "camera": (12, 10, 3), "inventory/0": (3,),
                     "inventory/1": (2,)}),
}


class SpaceEnv(gym.Env[Any, np.int64]):
    """The observation space `SPACES[space]` and three actions; its observations are samples of that space."""

    def __init__(self, space: str) -> None:
        self.observation_space = SPACES[space][0]
        self.action_space = gym.spaces.Discrete(3)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        super().reset(seed=seed)
        self.observation_space.seed(seed)
        return self.observation_space.sample(), {}

    def step(self, action: np.int64) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        return self.observation_space.sample(), 0.0, False, False, {}
