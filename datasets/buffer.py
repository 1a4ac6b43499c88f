"""Device-resident transition data with pure, jit-able sampling.

Everything here is a `flax.struct.PyTreeNode`, so it can be passed into `jax.jit`, carried
through `jax.lax.scan`, and closed over (or broadcast with `in_axes=None`) under `jax.vmap`
over seeds, without copying the arrays per seed.

A *batch* is a dict of arrays with a leading batch axis B, with the keys of the data it was
drawn from (for the offline data: `observations (B, obs_dim)`, `actions (B, act_dim)`,
`rewards (B,)`, `masks (B,)`, `next_observations (B, obs_dim)`, `terminals (B,)`, and, for agents
whose config sets `next_actions`, `next_actions (B, act_dim)`: see `next_action_indices`).

Replay semantics (offline-to-online). FQL keeps one buffer of capacity max(2M, N + 1): the
N dataset rows are copied in first, online transitions are appended after them, and batches
are drawn uniformly over all filled rows. Here the dataset stays a separate, shared `Dataset`
and each seed owns a `ReplayBuffer` holding only its online transitions; `sample_union`
draws uniformly over the N dataset rows plus the buffer's filled rows, which is the same
distribution as FQL's single buffer as long as that buffer does not wrap around (it does not
for FQL's budgets: 1M dataset rows + 1M online steps <= 2M). When our online buffer is full,
`add` overwrites its oldest online transition; the dataset rows are never overwritten.
"""

import functools

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

Batch = dict[str, jax.Array]

# Keys every offline dataset / transition carries (see the module docstring for shapes).
TRANSITION_KEYS = ('observations', 'actions', 'rewards', 'masks', 'next_observations', 'terminals')
_PER_ROW_SCALAR_KEYS = ('rewards', 'masks', 'terminals')


def _num_rows(data: dict[str, jax.Array]) -> int:
    return next(iter(data.values())).shape[0]


class Dataset(flax.struct.PyTreeNode):
    """A fixed set of N transitions held on the device.

    Attributes:
      data: dict of arrays, each with leading axis N (see `TRANSITION_KEYS` for the usual keys).
    """

    data: dict[str, jax.Array]

    @property
    def size(self) -> int:
        """N, the number of rows (a static Python int: shapes are static under jit)."""
        return _num_rows(self.data)

    @functools.partial(jax.jit, static_argnames=('batch_size',))
    def sample(self, key: jax.Array, batch_size: int) -> Batch:
        """Draws `batch_size` rows uniformly with replacement: idx_b ~ U{0, ..., N-1}.

        Returns a dict with the same keys, each array of shape (batch_size, ...).
        """
        indices = jax.random.randint(key, (batch_size,), 0, self.size)
        return jax.tree.map(lambda x: x[indices], self.data)


class ReplayBuffer(flax.struct.PyTreeNode):
    """A fixed-capacity ring buffer of transitions, updated purely (`add` returns a new buffer).

    Attributes:
      data: dict of arrays, each with leading axis `capacity`; rows >= size are zeros.
      size: int32 scalar, number of filled rows, min(#added, capacity).
      insert_index: int32 scalar, the row the next `add` writes, #added mod capacity.
    """

    data: dict[str, jax.Array]
    size: jax.Array
    insert_index: jax.Array

    @classmethod
    def create(cls, example_transition: dict[str, jax.Array], capacity: int) -> 'ReplayBuffer':
        """An empty buffer whose rows have the shapes and dtypes of `example_transition`.

        Args:
          example_transition: one transition (no batch axis), e.g. observations (obs_dim,), rewards ().
          capacity: maximum number of stored transitions (a Python int > 0).
        """
        if capacity <= 0:
            raise ValueError(f'ReplayBuffer capacity must be positive, got {capacity}.')
        data = jax.tree.map(
            lambda x: jnp.zeros((capacity, *jnp.shape(x)), dtype=jnp.asarray(x).dtype), example_transition)
        return cls(data=data, size=jnp.zeros((), jnp.int32), insert_index=jnp.zeros((), jnp.int32))

    @property
    def capacity(self) -> int:
        return _num_rows(self.data)

    @jax.jit
    def add(self, transition: dict[str, jax.Array]) -> 'ReplayBuffer':
        """Writes one transition at `insert_index` (overwriting the oldest row once full).

        A buffer with `next_actions` fills them for transitions without that key, as `next_action_indices` does
        for a dataset: the new row gets its own action until the next transition arrives, which then gives its
        action to the previous row unless that row ended an episode (`terminals`).
        """
        if 'next_actions' in self.data and 'next_actions' not in transition:
            previous = (self.insert_index - 1) % self.capacity
            continues = (self.size > 0) & (self.data['terminals'][previous] == 0)
            next_actions = self.data['next_actions'].at[previous].set(
                jnp.where(continues, transition['actions'], self.data['next_actions'][previous]))
            transition = dict(transition, next_actions=transition['actions'])
            self = self.replace(data=dict(self.data, next_actions=next_actions))
        data = jax.tree.map(lambda rows, x: rows.at[self.insert_index].set(x), self.data, transition)
        return self.replace(
            data=data,
            size=jnp.minimum(self.size + 1, self.capacity),
            insert_index=(self.insert_index + 1) % self.capacity,
        )

    @jax.jit
    def end_episode(self) -> 'ReplayBuffer':
        """Marks the newest row as the last of its episode (`terminals` = 1, `masks` kept: the episode is cut, as by a
        time limit), so that the next `add` does not continue it. An online phase resumed from a checkpoint needs
        this: it starts new episodes, since the environments' states are not saved."""
        newest = (self.insert_index - 1) % self.capacity
        terminals = self.data['terminals']
        cut = terminals.at[newest].set(jnp.where(self.size > 0, jnp.ones_like(terminals[newest]), terminals[newest]))
        return self.replace(data=dict(self.data, terminals=cut))

    @functools.partial(jax.jit, static_argnames=('batch_size',))
    def sample(self, key: jax.Array, batch_size: int) -> Batch:
        """Draws rows uniformly with replacement from the filled rows, idx_b ~ U{0, ..., size-1}.

        The buffer must hold at least one transition (an empty buffer would return zero rows).
        """
        indices = jax.random.randint(key, (batch_size,), 0, jnp.maximum(self.size, 1))
        return jax.tree.map(lambda x: x[indices], self.data)


@functools.partial(jax.jit, static_argnames=('batch_size',))
def sample_union(dataset: Dataset, buffer: ReplayBuffer, key: jax.Array, batch_size: int) -> Batch:
    """Draws rows uniformly with replacement from the union of the dataset and the buffer's filled rows.

    With N dataset rows and M = buffer.size online rows, j_b ~ U{0, ..., N + M - 1}; row j is dataset
    row j if j < N, else buffer row j - N. This equals sampling FQL's single buffer that holds the
    dataset followed by the online transitions. `dataset` and `buffer` must have the same keys and
    per-row shapes. Returns a dict of (batch_size, ...) arrays.
    """
    num_dataset_rows = dataset.size
    union_indices = jax.random.randint(key, (batch_size,), 0, num_dataset_rows + buffer.size)
    from_dataset = union_indices < num_dataset_rows
    dataset_indices = jnp.minimum(union_indices, num_dataset_rows - 1)
    buffer_indices = jnp.clip(union_indices - num_dataset_rows, 0, buffer.capacity - 1)

    def pick(dataset_rows: jax.Array, buffer_rows: jax.Array) -> jax.Array:
        chosen_from_dataset = from_dataset.reshape((batch_size,) + (1,) * (dataset_rows.ndim - 1))
        return jnp.where(chosen_from_dataset, dataset_rows[dataset_indices], buffer_rows[buffer_indices])

    return jax.tree.map(pick, dataset.data, buffer.data)


def next_action_indices(terminals: np.ndarray) -> np.ndarray:
    """The row of each row's next action within its episode: i + 1, except at an episode's last row (terminals
    = 1) and at the data's last row, where it is i itself (that row's own action stands in for the unknown next one).

    terminals (N,) -> (N,) int64. FQL's datasets use min(i + 1, N − 1) instead, so at an episode's last row FQL's
    `next_actions` is the first action of the next episode (its code warns that it is wrong there).
    """
    terminals = np.asarray(terminals)
    rows = np.arange(len(terminals))
    return np.where((terminals > 0) | (rows == len(terminals) - 1), rows, rows + 1)


def dataset_from_numpy(arrays: dict[str, np.ndarray], next_actions: bool = False) -> Dataset:
    """Builds a device `Dataset` from a numpy transition dict (as returned by `load_datasets`).

    Requires the keys in `TRANSITION_KEYS` with a common leading length N >= 1; rewards, masks and
    terminals must be (N,), observations/actions/next_observations (N, dim). All arrays are cast to
    float32. Extra keys are rejected so a typo cannot pass silently. With `next_actions`, the dataset
    also holds `next_actions` (N, act_dim) = actions[next_action_indices(terminals)].
    """
    missing = [k for k in TRANSITION_KEYS if k not in arrays]
    extra = [k for k in arrays if k not in TRANSITION_KEYS]
    if missing or extra:
        raise ValueError(f'Transition dict must have exactly the keys {TRANSITION_KEYS}; '
                         f'missing {missing}, unexpected {extra}.')
    num_rows = len(arrays['observations'])
    if num_rows == 0:
        raise ValueError('Transition dict is empty (0 rows).')
    for key in TRANSITION_KEYS:
        value = np.asarray(arrays[key])
        if value.shape[:1] != (num_rows,):
            raise ValueError(f'{key!r} has {value.shape[0] if value.ndim else "no"} rows, '
                             f'observations has {num_rows}.')
        expected_ndim = 1 if key in _PER_ROW_SCALAR_KEYS else 2
        if value.ndim != expected_ndim:
            raise ValueError(f'{key!r} must have {expected_ndim} dimension(s) (N{",dim" * (expected_ndim - 1)}), '
                             f'got shape {value.shape}.')
    if arrays['observations'].shape != arrays['next_observations'].shape:
        raise ValueError(f"observations {arrays['observations'].shape} and next_observations "
                         f"{arrays['next_observations'].shape} differ in shape.")
    data = {k: np.asarray(arrays[k], dtype=np.float32) for k in TRANSITION_KEYS}
    if next_actions:
        data['next_actions'] = data['actions'][next_action_indices(data['terminals'])]
    return Dataset(data={k: jnp.asarray(v) for k, v in data.items()})


def observation_statistics(observations: np.ndarray, min_std: float = 1e-6) -> tuple[tuple[float, ...],
                                                                                      tuple[float, ...]]:
    """Per-dimension mean and standard deviation of the N real rows of `observations` (N, obs_dim), for
    z-scoring (agents' `normalize_observations`). Dimensions with std < `min_std` (constant features) get
    std 1, as in the MeanFlowQL authors' code; unlike it, no zero padding rows enter the statistics.
    Computed in float64 and returned as Python floats, so they round-trip exactly through flags.json."""
    observations = np.asarray(observations, dtype=np.float64)
    if observations.ndim != 2 or observations.shape[0] == 0:
        raise ValueError(f'observation_statistics needs a non-empty (N, obs_dim) array, got shape {observations.shape}')
    if not np.all(np.isfinite(observations)):
        raise ValueError('observation_statistics: observations contain NaN or inf')
    mean, std = observations.mean(axis=0), observations.std(axis=0)
    std = np.where(std < min_std, 1.0, std)
    return tuple(float(v) for v in mean), tuple(float(v) for v in std)
