"""Fused, device-resident training: K updates per jitted call, S seeds per call.

One call of a `FusedUpdater` runs, for every seed at once (`jax.vmap` over a leading seed axis S),

    repeat K times (`jax.lax.scan`):
        sample_key, batch_key = split(sample_key)
        batch = sample_batch(data, batch_key)        # on the device, no host round-trip
        agent, info = agent.update(batch)

and returns the new state, the metrics of the last of the K updates (one (S,) array per key), and the
index of the first update (0 … K−1) whose losses were not all finite (−1 if none), per seed.

Metrics. Only the last update of a call computes its metrics (the runner logs them when the call ends on a
log step: FQL's convention, the info of the update at the log step). The other K − 1 updates only report
whether their losses were finite, which the gradient step computes anyway; XLA then leaves every other
metric out of them. With one seed, the seed axis is dropped inside the call instead of vmapped over.

Key streams. Every seed derives all of its randomness from its seed value alone (`seed_streams`),
so seed s trained inside a group of seeds follows the same stream as seed s trained alone. The
batch-sampling key lives in `TrainingState.sample_key`, separate from the agent's own `rng`, and is
checkpointed with it.

Step boundaries. Logging, evaluation and checkpoints happen between calls, after an exact number of
updates: `training.schedule.offline_call_size` shortens a call so that it ends on the next boundary.
Only a few distinct K get compiled (the requested K and the remainders that the boundary intervals
produce; with FQL's defaults and K = 100: 1 for the step-1 evaluation, 99, and 100), each once (K is
a static argument of one module-level jitted function). The loop reads the (S,) metrics back after every call
(one host sync per K updates) for the NaN guard.

Devices. With several devices, `SeedPlacement` shards the seed axis over a 1-D mesh
(`NamedSharding(mesh, P('seeds'))`) and replicates the dataset; the jitted vmapped function then runs
SPMD over the devices with no change to the code that calls it. It uses the largest device count
that divides S (so S = 1 on 8 devices uses one device) and says so.
"""

import dataclasses
import functools
from typing import Any, Callable

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

Batch = dict[str, jax.Array]
Info = dict[str, jax.Array]
SampleBatchFn = Callable[[Any, jax.Array], Batch]


class TrainingState(flax.struct.PyTreeNode):
    """Everything that changes during training, for one seed (with a leading (S,) axis when stacked).

    Attributes:
      agent: the agent pytree (params, optimiser state, target params, agent rng, counters, α state).
      sample_key: (2,) uint32 PRNG key for drawing batches; separate from `agent.rng`.
    """

    agent: Any
    sample_key: jax.Array


class SeedStreams(flax.struct.PyTreeNode):
    """The independent PRNG keys of one seed, each (2,) uint32, all derived from the seed value alone."""

    create: jax.Array  # Agent.create (network init and the agent's own rng)
    sample: jax.Array  # batch sampling (TrainingState.sample_key)
    validation: jax.Array  # validation batches and loss noise, folded with the step
    evaluation: jax.Array  # evaluation policy noise, folded with the step and the env step
    online: jax.Array  # online-phase action noise, folded with the step


def seed_streams(seed: int) -> SeedStreams:
    """Splits PRNGKey(seed) into the five streams of `SeedStreams`."""
    keys = jax.random.split(jax.random.PRNGKey(seed), 5)
    return SeedStreams(*(keys[i] for i in range(5)))


def stacked_streams(seeds: list[int]) -> SeedStreams:
    """`seed_streams` of each seed, stacked along a leading (S,) axis."""
    return jax.tree.map(lambda *keys: jnp.stack(keys), *[seed_streams(seed) for seed in seeds])


def create_training_states(agent_class: type, example_batch: Batch, config: Any,
                           streams: SeedStreams) -> TrainingState:
    """Builds S agents at once: `jax.vmap` of `agent_class.create` over the (S, 2) create keys."""
    agents = jax.vmap(lambda key: agent_class.create(key, example_batch, config))(streams.create)
    return TrainingState(agent=agents, sample_key=streams.sample)


def distinct_buffers(tree: Any) -> Any:
    """`tree` with every leaf that repeats an earlier leaf replaced by a copy. An agent built eagerly may hold one
    array twice (a target network created as its online network's parameters), and a donating call must be given
    each buffer once."""
    seen: set[int] = set()

    def owned(leaf: Any) -> Any:
        if not isinstance(leaf, jax.Array):  # only device arrays are donated (and small ints share their id)
            return leaf
        if id(leaf) in seen:
            return jnp.copy(leaf)
        seen.add(id(leaf))
        return leaf

    return jax.tree.map(owned, tree)


def _all_finite(info: Info) -> jax.Array:
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(value)) for value in jax.tree.leaves(info)]))


def _losses_finite(info: Info) -> jax.Array:
    """Whether the losses of one update (the entries whose key ends in 'loss'; all of `info` if none does) are
    finite. The losses are by-products of the gradient step, so this check costs nothing; a non-finite gradient
    norm or statistic shows up in the losses of the next update, through the parameters."""
    losses = {k: v for k, v in info.items() if k.endswith('loss')}
    return _all_finite(losses or info)


def fused_updates(state: TrainingState, data: Any, num_updates: int,
                  sample_batch: SampleBatchFn) -> tuple[TrainingState, Info, jax.Array]:
    """`num_updates` sample-then-update steps of ONE seed (vmap this over seeds).

    The first K − 1 run in a `jax.lax.scan` that keeps, of each update's info, only whether its losses were
    finite (`_losses_finite`), so XLA drops the computation of every other metric (gradient norms, maxima,
    minima) from those updates. The last update runs after the scan and returns its whole info.
    Returns (state, info, first_nonfinite): info[k] = info_K[k] of the last update as a float32 scalar;
    first_nonfinite = index of the first update whose losses (for the last update: any metric) were not
    all finite, or −1.
    """

    def one_update(state: TrainingState) -> tuple[TrainingState, Info]:
        sample_key, batch_key = jax.random.split(state.sample_key)
        agent, info = state.agent.update(sample_batch(data, batch_key))
        return TrainingState(agent=agent, sample_key=sample_key), info

    def scanned_update(state: TrainingState, _: None) -> tuple[TrainingState, jax.Array]:
        state, info = one_update(state)
        return state, _losses_finite(info)

    state, finite = jax.lax.scan(scanned_update, state, None, length=num_updates - 1)
    state, info = one_update(state)
    finite = jnp.append(finite, _all_finite(info))
    first_nonfinite = jnp.where(jnp.all(finite), -1, jnp.argmin(finite))
    return state, jax.tree.map(lambda x: x.astype(jnp.float32), info), first_nonfinite


class SeedPlacement:
    """Where the S seeds live: one device, or the seed axis sharded over a 1-D device mesh."""

    def __init__(self, num_seeds: int, devices: list | None = None):
        devices = list(jax.devices() if devices is None else devices)
        # The largest device count that divides S: every device then holds S / d whole seeds.
        num_used = max(d for d in range(1, len(devices) + 1) if num_seeds % d == 0)
        self.num_seeds = num_seeds
        self.devices = devices[:num_used]
        self.note = ''
        if num_used < len(devices):
            self.note = (f'{len(devices)} devices visible but {num_seeds} seed(s); the seed axis is '
                         f'sharded over {num_used} device(s) (the largest count dividing the number of seeds).')
        if num_used > 1:
            mesh = Mesh(np.array(self.devices), ('seeds',))
            self.seed_sharding = NamedSharding(mesh, PartitionSpec('seeds'))
            self.replicated = NamedSharding(mesh, PartitionSpec())
        else:
            self.seed_sharding = jax.sharding.SingleDeviceSharding(self.devices[0])
            self.replicated = self.seed_sharding

    @property
    def num_devices(self) -> int:
        return len(self.devices)

    def place_seeds(self, tree: Any) -> Any:
        """Puts a pytree whose leaves all have a leading (S,) axis onto the devices, split by seed."""
        return jax.tree.map(lambda x: jax.device_put(x, self.seed_sharding), tree)

    def replicate(self, tree: Any) -> Any:
        """Puts a pytree (e.g. the dataset) on every device used."""
        return jax.tree.map(lambda x: jax.device_put(x, self.replicated), tree)


@dataclasses.dataclass(frozen=True)
class DatasetSampler:
    """Uniform batches from a `Dataset` (hashable, so compiled functions are shared between runs)."""

    batch_size: int

    def __call__(self, data: Any, key: jax.Array) -> Batch:
        return data.sample(key, self.batch_size)


def _fused_over_seeds(state: TrainingState, data: Any, num_updates: int, sample_batch: SampleBatchFn,
                      data_seed_axes: Any) -> tuple[TrainingState, Info, jax.Array]:
    """`fused_updates` over the leading seed axis of `state` (and of `data` where data_seed_axes says).

    S > 1: `jax.vmap`. S = 1: the one seed runs unbatched and its outputs get the (1,) axis back. XLA squeezes
    a size-1 vmap axis out of the matmuls but not out of the elementwise and reduction ops (Adam, LayerNorm,
    activations), which then took about twice the time (`benchmarks/profile_update.py`).
    """
    per_seed = functools.partial(fused_updates, num_updates=num_updates, sample_batch=sample_batch)
    if jax.tree.leaves(state)[0].shape[0] == 1:
        first_seed = lambda x: x[0]  # noqa: E731
        seed_data = jax.tree.map(lambda axis, subtree: subtree if axis is None else jax.tree.map(first_seed, subtree),
                                 data_seed_axes, data, is_leaf=lambda x: x is None)
        return jax.tree.map(lambda x: x[None], per_seed(jax.tree.map(first_seed, state), seed_data))
    return jax.vmap(per_seed, in_axes=(0, data_seed_axes))(state, data)


# Donating the old state lets XLA write the new state into its buffers instead of copying the state into the
# scan once per call (measured on CPU: ~2% of an FQL default update at K = 10).
_fused_jit = jax.jit(_fused_over_seeds, static_argnums=(2, 3, 4))
_fused_jit_donating = jax.jit(_fused_over_seeds, static_argnums=(2, 3, 4), donate_argnums=(0,))


class FusedUpdater:
    """Jitted, seed-vmapped `fused_updates`, compiled once per distinct number of updates K.

    Call as `updater(state, data, num_updates)` with `state` stacked over seeds (leading (S,) axis).
    `data_seed_axes` is the `in_axes` of `data` under the seed vmap: None for a dataset shared by all
    seeds, or a pytree prefix such as (None, 0) for (shared dataset, per-seed replay buffer).
    The jitted function is module-level with `sample_batch` static, so runs with the same agent
    config, data shapes and (hashable) sampler reuse each other's compilations.
    With `donate_state` (the default, the training loop's way) a call consumes the `state` it is given: its
    buffers hold the result, and reading the old state afterwards raises. Pass False to keep it readable.
    """

    def __init__(self, sample_batch: SampleBatchFn, data_seed_axes: Any = None, donate_state: bool = True):
        self._sample_batch = sample_batch
        self._data_seed_axes = data_seed_axes
        self._sizes: set[int] = set()
        self._donate = donate_state

    @property
    def compiled_sizes(self) -> list[int]:
        """The distinct K used so far (each is one compilation)."""
        return sorted(self._sizes)

    def __call__(self, state: TrainingState, data: Any, num_updates: int) -> tuple[TrainingState, Info, jax.Array]:
        if num_updates < 1:
            raise ValueError(f'num_updates must be >= 1, got {num_updates}')
        self._sizes.add(num_updates)
        if self._donate:
            state = distinct_buffers(state)
        return self._function(state, data, num_updates, self._sample_batch, self._data_seed_axes)

    @property
    def _function(self) -> Callable:
        return _fused_jit_donating if self._donate else _fused_jit

    def lower(self, state: TrainingState, data: Any, num_updates: int) -> Any:
        """The `jax.stages.Lowered` call of `num_updates` updates (for benchmarks: compile time, XLA cost, HLO)."""
        return self._function.lower(state, data, num_updates, self._sample_batch, self._data_seed_axes)


@functools.partial(jax.jit, static_argnums=(3,))
def validation_losses(state: TrainingState, data: Any, keys: jax.Array, sample_batch: SampleBatchFn) -> Info:
    """Seed-vmapped validation metrics: (state (S,…), val data, keys (S, 2)) -> info of (S,) arrays.

    Draws one batch from the validation data and returns `agent.validation_metrics(batch, rng)` (for FQL's
    agents: the losses at the current parameters, with no gradient step).
    """

    def per_seed(seed_state: TrainingState, key: jax.Array) -> Info:
        batch_key, loss_key = jax.random.split(key)
        batch = sample_batch(data, batch_key)
        return seed_state.agent.validation_metrics(batch, loss_key)

    return jax.vmap(per_seed)(state, keys)


def first_nonfinite_key(mean_info: dict[str, np.ndarray]) -> tuple[str, int] | None:
    """(key, seed index) of the first metric (in sorted key order) that is NaN/inf for some seed."""
    for key in sorted(mean_info):
        values = np.asarray(mean_info[key]).reshape(-1)
        bad = np.flatnonzero(~np.isfinite(values))
        if bad.size:
            return key, int(bad[0])
    return None
