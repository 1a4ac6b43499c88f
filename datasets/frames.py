"""Device-resident visual datasets: every frame stored once (uint8), frame stacks and augmentation built per batch.

A visual OGBench file stores, per episode, T frames s_0 … s_{T−1} (64×64×3 uint8) and T actions; the T − 1
transitions are (s_t, a_t, s_{t+1}), t < T − 1. `FrameDataset` keeps the F stored frames once and, per
transition, the index of its frame, so the next observation is frame `frame_index + 1` (never a copy).

Frame stacking (FQL's rule, `frame_stack` = k): the observation of transition t is the channel-wise
concatenation [s_{t−k+1}, …, s_{t−1}, s_t], oldest first, where an index before the episode's first frame is
replaced by that first frame (an episode's first stack repeats s_0, as the evaluation env's wrapper does at
reset); the next observation is the same stack one frame later, ending in s_{t+1}. Stacks are gathered by
index when a batch is sampled: the dataset itself is never stacked.

Augmentation (FQL's random shift, probability `p_aug`): with probability p_aug a whole batch is augmented
(one draw per batch, as FQL does); each row then gets its own offset (dy, dx) ~ U{0 … 2·pad}², and both its
observation and next observation are edge-padded by `pad` pixels and cropped back to H×W at that offset
(the same offset for both). Offset (pad, pad) is the identity, so an un-augmented batch takes that path.
It runs inside the jitted sampling, from the per-seed sampling key.

Evaluation and online envs stack frames the same way (`FrameStack`).

Everything else is a `flax.struct.PyTreeNode` with the same `sample(key, batch_size)` interface as
`datasets.buffer.Dataset`, so the fused training step uses either unchanged.
"""

import collections
import functools
import os

import flax.struct
import gymnasium
import jax
import jax.numpy as jnp
import numpy as np

from datasets.buffer import next_action_indices

Batch = dict[str, jax.Array]

# FQL's random-shift padding in pixels (seohongpark/fql `Dataset.augment`: pad 3, crop offsets 0..6).
AUGMENT_PADDING = 3
# Per-transition arrays of a frame dataset (numpy dicts from `datasets.ogbench_data.load_datasets`).
TRANSITION_KEYS = ('actions', 'rewards', 'masks', 'terminals', 'frame_index', 'episode_start')
FRAME_KEYS = ('frames',) + TRANSITION_KEYS


def stack_frames(frames: jax.Array, frame_index: jax.Array, episode_start: jax.Array, frame_stack: int) -> jax.Array:
    """Frame stacks by index: frames (F, H, W, C), frame_index and episode_start (B,) -> (B, H, W, k·C).

    Channel block j (j = 0 … k−1) is frame max(frame_index − (k − 1 − j), episode_start): oldest first, never
    reaching before the episode's first frame.
    """
    offsets = jnp.arange(frame_stack - 1, -1, -1)  # k−1, …, 0
    indices = jnp.maximum(frame_index[:, None] - offsets[None, :], episode_start[:, None])  # (B, k)
    stacked = frames[indices]  # (B, k, H, W, C)
    batch, _, height, width, channels = stacked.shape
    return stacked.transpose(0, 2, 3, 1, 4).reshape(batch, height, width, frame_stack * channels)


def random_shift(images: jax.Array, offsets: jax.Array, padding: int = AUGMENT_PADDING) -> jax.Array:
    """Edge-pad (B, H, W, C) images by `padding` and crop H×W at per-row offsets (B, 2) in [0, 2·padding]."""
    padded = jnp.pad(images, ((0, 0), (padding, padding), (padding, padding), (0, 0)), mode='edge')

    def crop(image: jax.Array, offset: jax.Array) -> jax.Array:
        return jax.lax.dynamic_slice(image, (offset[0], offset[1], 0), images.shape[1:])

    return jax.vmap(crop)(padded, offsets)


def draw_shift_offsets(key: jax.Array, batch_size: int, p_aug: float, padding: int = AUGMENT_PADDING) -> jax.Array:
    """(B, 2) crop offsets: uniform in [0, 2·padding] with probability p_aug (one draw for the whole batch),
    else all (padding, padding), the identity."""
    coin_key, offset_key = jax.random.split(key)
    offsets = jax.random.randint(offset_key, (batch_size, 2), 0, 2 * padding + 1)
    augment = jax.random.uniform(coin_key) < p_aug
    return jnp.where(augment, offsets, padding)


class FrameDataset(flax.struct.PyTreeNode):
    """N transitions over F stored frames, held on the device.

    Attributes:
      frames: (F, H, W, C) uint8, every stored frame once.
      data: per-transition arrays with leading axis N: actions (N, A) float32, rewards, masks, terminals (N,)
        float32, frame_index (N,) int32 (the frame of s_t; s_{t+1} is frame_index + 1), episode_start (N,)
        int32 (the first frame of the transition's episode); with next actions (agents whose config sets
        `next_actions`) also next_actions (N, A) float32, as in `datasets.buffer.dataset_from_numpy`.
      frame_stack: k, frames per observation (1: no stacking). Static.
      p_aug: probability of augmenting a batch (0: never). Static.
    """

    frames: jax.Array
    data: dict[str, jax.Array]
    frame_stack: int = flax.struct.field(pytree_node=False, default=1)
    p_aug: float = flax.struct.field(pytree_node=False, default=0.0)

    @property
    def size(self) -> int:
        """N, the number of transitions (a static Python int)."""
        return self.data['actions'].shape[0]

    def batch_at(self, rows: jax.Array, augment_key: jax.Array | None = None) -> Batch:
        """The transitions `rows` (B,) as a batch: observations and next_observations (B, H, W, k·C) uint8,
        actions (B, A), rewards, masks, terminals (B,) (and next_actions (B, A) if the dataset holds them); shifted
        (see the module docstring) if `augment_key` is given and p_aug > 0."""
        picked = {key: value[rows] for key, value in self.data.items()}
        frame_index, episode_start = picked.pop('frame_index'), picked.pop('episode_start')
        observations = stack_frames(self.frames, frame_index, episode_start, self.frame_stack)
        next_observations = stack_frames(self.frames, frame_index + 1, episode_start, self.frame_stack)
        if augment_key is not None and self.p_aug > 0:
            offsets = draw_shift_offsets(augment_key, rows.shape[0], self.p_aug)
            observations, next_observations = random_shift(observations, offsets), random_shift(next_observations,
                                                                                                 offsets)
        return picked | {'observations': observations, 'next_observations': next_observations}

    @functools.partial(jax.jit, static_argnames=('batch_size',))
    def sample(self, key: jax.Array, batch_size: int) -> Batch:
        """Draws `batch_size` transitions uniformly with replacement, stacks and (maybe) shifts their frames."""
        index_key, augment_key = jax.random.split(key)
        rows = jax.random.randint(index_key, (batch_size,), 0, self.size)
        return self.batch_at(rows, augment_key)

    def example_batch(self) -> Batch:
        """The first transition as a batch of one (shapes and dtypes for building agents)."""
        return self.batch_at(jnp.zeros((1,), jnp.int32))


class DatasetTooLargeError(RuntimeError):
    """A visual dataset does not fit in the device's free memory; the message names the sizes and the remedy."""


def device_bytes(arrays: dict[str, np.ndarray]) -> int:
    """Bytes a frame dataset occupies on the device: frames as uint8, the per-transition arrays at 4 bytes each."""
    return sum(int(np.asarray(value).size) * (1 if key == 'frames' else 4) for key, value in arrays.items())


def free_device_bytes(device: jax.Device) -> int | None:
    """Free memory of `device`: the allocator's limit minus its use on accelerators, the host's MemAvailable for
    the CPU backend; None if unknown."""
    stats = device.memory_stats() if hasattr(device, 'memory_stats') else None
    if stats and 'bytes_limit' in stats:
        return int(stats['bytes_limit']) - int(stats.get('bytes_in_use', 0))
    if device.platform == 'cpu' and os.path.exists('/proc/meminfo'):
        with open('/proc/meminfo') as f:
            for line in f:
                if line.startswith('MemAvailable:'):
                    return int(line.split()[1]) * 1024
    return None


def check_fits(task: str, splits: list[dict[str, np.ndarray]], device: jax.Device) -> None:
    """Raises DatasetTooLargeError if the frame datasets `splits` (train, val) need more than `device` has free."""
    needed = sum(device_bytes(split) for split in splits)
    free = free_device_bytes(device)
    if free is None or needed <= free:
        return
    num_frames = sum(len(split['frames']) for split in splits)
    raise DatasetTooLargeError(
        f'{task}: the visual dataset needs {needed / 2**30:.2f} GiB on {device.platform} ({num_frames} frames of '
        f'{splits[0]["frames"][0].nbytes} bytes, train and val), but only {free / 2**30:.2f} GiB are free. Use a '
        f'smaller dataset (--generate_missing_data=N episodes with another --dataset_dir) or a device with more '
        f'memory.')


def frame_dataset_from_numpy(arrays: dict[str, np.ndarray], frame_stack: int = 1, p_aug: float = 0.0,
                             next_actions: bool = False) -> FrameDataset:
    """Builds a device `FrameDataset` from the numpy dict of `datasets.ogbench_data.load_datasets` (keys
    `FRAME_KEYS`); checks the keys, dtypes, lengths and that every frame index and its successor exist. With
    `next_actions`, it also holds next_actions (N, A) = actions[next_action_indices(terminals)], the next action
    within the episode (`datasets.buffer.next_action_indices`)."""
    if set(arrays) != set(FRAME_KEYS):
        raise ValueError(f'a frame dataset needs exactly the keys {FRAME_KEYS}, got {sorted(arrays)}')
    frames = np.asarray(arrays['frames'])
    if frames.dtype != np.uint8 or frames.ndim != 4:
        raise ValueError(f'frames must be (F, H, W, C) uint8, got {frames.dtype} {frames.shape}')
    num_rows = len(arrays['actions'])
    for key in TRANSITION_KEYS:
        if len(arrays[key]) != num_rows:
            raise ValueError(f'{key!r} has {len(arrays[key])} rows, actions has {num_rows}')
    frame_index, episode_start = np.asarray(arrays['frame_index']), np.asarray(arrays['episode_start'])
    if num_rows == 0 or frame_index.min() < 0 or frame_index.max() + 1 >= len(frames) \
            or (episode_start > frame_index).any():
        raise ValueError(f'frame indices must satisfy 0 <= episode_start <= frame_index and frame_index + 1 < '
                         f'{len(frames)} frames')
    if not (isinstance(frame_stack, int) and frame_stack >= 1):
        raise ValueError(f'frame_stack must be a positive int, got {frame_stack!r}')
    if not 0.0 <= p_aug <= 1.0:
        raise ValueError(f'p_aug must be in [0, 1], got {p_aug!r}')
    data = {key: jnp.asarray(np.asarray(arrays[key], dtype=np.int32 if key in ('frame_index', 'episode_start')
                                        else np.float32)) for key in TRANSITION_KEYS}
    if next_actions:
        data['next_actions'] = data['actions'][next_action_indices(np.asarray(arrays['terminals']))]
    return FrameDataset(frames=jnp.asarray(frames), data=data, frame_stack=frame_stack, p_aug=float(p_aug))


class FrameStack(gymnasium.Wrapper):
    """An env whose observation is the channel-wise stack of its last k frames, oldest first ((H, W, k·C)); after a
    reset the stack holds k copies of the first frame (FQL's rule, the same as `stack_frames` on the datasets)."""

    def __init__(self, env: gymnasium.Env, num_frames: int):
        super().__init__(env)
        space = env.observation_space
        self.observation_space = gymnasium.spaces.Box(np.concatenate([space.low] * num_frames, axis=-1),
                                                      np.concatenate([space.high] * num_frames, axis=-1),
                                                      dtype=space.dtype)
        self.frames = collections.deque(maxlen=num_frames)

    def reset(self, **kwargs):
        observation, info = self.env.reset(**kwargs)
        self.frames.extend([observation] * self.frames.maxlen)
        return np.concatenate(self.frames, axis=-1), info

    def step(self, action):
        observation, reward, terminated, truncated, info = self.env.step(action)
        self.frames.append(observation)
        return np.concatenate(self.frames, axis=-1), reward, terminated, truncated, info
