"""OGBench's manipulation tasks observed as 64x64x3 uint8 frames: `visual-<suite>-<kind>-singletask[-task<k>]-v0`.

The data and the env are OGBench's visual variants (`datasets.ogbench_data` loads frame datasets, each frame stored
once; `datasets.generate` renders them locally); observations stack `frame_stack` frames and training batches are
shifted with probability `p_aug` (`datasets.frames`), FQL's run flags. FQL's protocol for pixels: 500K offline
updates, offline only (no online phase). Scored as the state tasks: success, the mean of the last three evaluations.
"""

from datasets import names
from datasets.families.ogbench import OGBenchFamily


class VisualOGBenchFamily(OGBenchFamily):
    name = 'ogbench_visual'
    default_offline_steps = 500_000
    observes_frames = True
    supports_online = False
    default = False

    def claims(self, name: str) -> bool:
        return names.is_visual(name)


FAMILY = VisualOGBenchFamily()
