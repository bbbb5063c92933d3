"""Where this process sits in a torchrun job, read from torchrun's environment variables.

Apart from ``avepipe.distributed`` (which joins process groups) so that choosing a device
(``avepipe.device``) can ask which rank it is without importing torch.distributed's glue.
"""
from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Ranks:
    """Where this process sits in a torchrun job (a plain run is rank 0 of 1)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def env_ranks() -> Ranks:
    """The torchrun job of this process, from its environment (no process group needed)."""
    get = os.environ.get
    world = int(get("WORLD_SIZE", "1"))
    return Ranks(rank=int(get("RANK", "0")), world_size=world, local_rank=int(get("LOCAL_RANK", "0")),
                 local_world_size=int(get("LOCAL_WORLD_SIZE", str(world))))
