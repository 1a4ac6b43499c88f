"""Tests for datasets/buffer.py: shapes, purity under jit/scan/vmap, and sampling supports."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from datasets.buffer import (Dataset, ReplayBuffer, dataset_from_numpy, next_action_indices, observation_statistics,
                             sample_union)

OBS_DIM, ACT_DIM = 3, 2


def make_transitions(num_rows: int, offset: float = 0.0) -> dict[str, np.ndarray]:
    """Rows whose observations[:, 0] equals offset + row index, so a sampled row is identifiable."""
    row_ids = offset + np.arange(num_rows, dtype=np.float64)
    observations = np.repeat(row_ids[:, None], OBS_DIM, axis=1)
    return {
        'observations': observations,
        'actions': np.tile(np.linspace(-1, 1, ACT_DIM), (num_rows, 1)),
        'rewards': -np.ones(num_rows),
        'masks': np.ones(num_rows),
        'next_observations': observations + 0.5,
        'terminals': (np.arange(num_rows) % 4 == 3).astype(np.float64),
    }


def one_transition(row_id: float) -> dict[str, jax.Array]:
    return {k: jnp.asarray(v[0], jnp.float32) for k, v in make_transitions(1, offset=row_id).items()}


def test_dataset_from_numpy_casts_to_float32_and_keeps_rows():
    dataset = dataset_from_numpy(make_transitions(10))
    assert dataset.size == 10
    for key, value in dataset.data.items():
        assert value.dtype == jnp.float32, key
    assert dataset.data['rewards'].shape == (10,)
    assert dataset.data['observations'].shape == (10, OBS_DIM)
    np.testing.assert_array_equal(dataset.data['observations'][:, 0], np.arange(10))


@pytest.mark.parametrize('mutate, message', [
    (lambda d: d.pop('masks'), "missing ['masks']"),
    (lambda d: d.update(extra=np.zeros(10)), "unexpected ['extra']"),
    (lambda d: d.update(rewards=np.zeros(9)), "'rewards' has 9 rows, observations has 10"),
    (lambda d: d.update(rewards=np.zeros((10, 1))), "'rewards' must have 1 dimension(s)"),
    (lambda d: d.update(next_observations=np.zeros((10, OBS_DIM + 1))), 'differ in shape'),
])
def test_dataset_from_numpy_rejects_bad_dicts(mutate, message):
    arrays = make_transitions(10)
    mutate(arrays)
    with pytest.raises(ValueError) as error:
        dataset_from_numpy(arrays)
    assert message in str(error.value)


def test_dataset_sample_shapes_and_rows_are_consistent():
    dataset = dataset_from_numpy(make_transitions(10))
    batch = dataset.sample(jax.random.PRNGKey(0), 64)
    assert batch['observations'].shape == (64, OBS_DIM)
    assert batch['actions'].shape == (64, ACT_DIM)
    assert batch['rewards'].shape == (64,)
    row_ids = np.asarray(batch['observations'][:, 0])
    # All keys come from the same row: next_observations = observations + 0.5 row-wise.
    np.testing.assert_array_equal(batch['next_observations'][:, 0], row_ids + 0.5)
    np.testing.assert_array_equal(batch['terminals'], (row_ids % 4 == 3))
    assert set(row_ids.astype(int)) <= set(range(10))


def test_dataset_sample_is_uniform_over_rows():
    dataset = dataset_from_numpy(make_transitions(5))
    row_ids = np.asarray(dataset.sample(jax.random.PRNGKey(1), 50_000)['observations'][:, 0]).astype(int)
    frequencies = np.bincount(row_ids, minlength=5) / len(row_ids)
    np.testing.assert_allclose(frequencies, 0.2, atol=0.01)


def test_dataset_sample_inside_scan_and_vmap_over_seeds():
    dataset = dataset_from_numpy(make_transitions(10))

    def sum_of_sampled_rows(key):
        def step(total, step_key):
            batch = dataset.sample(step_key, 4)  # dataset is closed over, not copied per seed
            return total + batch['observations'][:, 0].sum(), None
        total, _ = jax.lax.scan(step, jnp.zeros(()), jax.random.split(key, 3))
        return total

    seed_keys = jax.random.split(jax.random.PRNGKey(2), 5)
    totals = jax.jit(jax.vmap(sum_of_sampled_rows))(seed_keys)
    assert totals.shape == (5,)
    # Each seed matches running the same seed alone, and seeds differ.
    np.testing.assert_allclose(totals[3], sum_of_sampled_rows(seed_keys[3]))
    assert len(set(np.asarray(totals).tolist())) > 1


def test_dataset_sample_with_broadcast_dataset_argument():
    dataset = dataset_from_numpy(make_transitions(10))
    keys = jax.random.split(jax.random.PRNGKey(3), 4)
    batches = jax.vmap(lambda d, k: d.sample(k, 6), in_axes=(None, 0))(dataset, keys)
    assert batches['observations'].shape == (4, 6, OBS_DIM)
    np.testing.assert_array_equal(batches['observations'][1], dataset.sample(keys[1], 6)['observations'])


def test_replay_buffer_add_fills_rows_then_wraps_around():
    buffer = ReplayBuffer.create(one_transition(0.0), capacity=3)
    assert buffer.capacity == 3 and int(buffer.size) == 0
    for row_id in (10.0, 11.0):
        buffer = buffer.add(one_transition(row_id))
    assert int(buffer.size) == 2 and int(buffer.insert_index) == 2
    np.testing.assert_array_equal(buffer.data['observations'][:, 0], [10.0, 11.0, 0.0])
    for row_id in (12.0, 13.0):
        buffer = buffer.add(one_transition(row_id))
    assert int(buffer.size) == 3 and int(buffer.insert_index) == 1
    np.testing.assert_array_equal(buffer.data['observations'][:, 0], [13.0, 11.0, 12.0])
    assert buffer.data['rewards'].shape == (3,)


def test_replay_buffer_rejects_non_positive_capacity():
    with pytest.raises(ValueError, match='capacity must be positive, got 0'):
        ReplayBuffer.create(one_transition(0.0), capacity=0)


def test_replay_buffer_add_and_sample_in_scan_stay_within_filled_rows():
    buffer = ReplayBuffer.create(one_transition(0.0), capacity=100)

    def step(buf, inputs):
        row_id, key = inputs
        buf = buf.add(jax.tree.map(lambda x: x + row_id, one_transition(0.0)))
        return buf, buf.sample(key, 32)['observations'][:, 0]

    row_ids = jnp.arange(1.0, 8.0)
    keys = jax.random.split(jax.random.PRNGKey(4), 7)
    buffer, sampled = jax.jit(lambda b: jax.lax.scan(step, b, (row_ids, keys)))(buffer)
    assert int(buffer.size) == 7
    sampled = np.asarray(sampled)
    for t in range(7):
        # After t + 1 additions only rows with ids 1..t+1 are filled; the zero padding is never drawn.
        assert set(sampled[t].tolist()) <= set(range(1, t + 2)), (t, sampled[t])
    assert set(sampled[6].tolist()) == set(range(1, 8))


def test_replay_buffer_vmapped_over_seeds_keeps_separate_contents():
    buffers = jax.vmap(lambda _: ReplayBuffer.create(one_transition(0.0), capacity=4))(jnp.arange(2))
    transitions = jax.vmap(lambda r: jax.tree.map(lambda x: x + r, one_transition(0.0)))(jnp.array([5.0, 7.0]))
    buffers = jax.vmap(ReplayBuffer.add)(buffers, transitions)
    assert buffers.size.shape == (2,)
    np.testing.assert_array_equal(buffers.data['observations'][:, 0, 0], [5.0, 7.0])


def test_sample_union_covers_dataset_and_buffer_uniformly():
    dataset = dataset_from_numpy(make_transitions(6, offset=1.0))  # row ids 1..6; empty buffer rows have id 0
    buffer = ReplayBuffer.create(one_transition(0.0), capacity=50)
    for row_id in (100.0, 101.0):
        buffer = buffer.add(one_transition(row_id))
    batch = sample_union(dataset, buffer, jax.random.PRNGKey(5), 40_000)
    assert batch['observations'].shape == (40_000, OBS_DIM)
    row_ids = np.asarray(batch['observations'][:, 0]).astype(int)
    support = sorted(set(row_ids.tolist()))
    assert support == [1, 2, 3, 4, 5, 6, 100, 101]  # never the buffer's empty rows (id 0)
    # Uniform over the 8 filled rows of the union: each has probability 1/8.
    for row_id in support:
        assert abs(np.mean(row_ids == row_id) - 1 / 8) < 0.01, row_id
    # Rows stay intact across keys.
    np.testing.assert_array_equal(batch['next_observations'][:, 0], batch['observations'][:, 0] + 0.5)


def test_sample_union_with_empty_buffer_samples_only_the_dataset():
    dataset = dataset_from_numpy(make_transitions(6, offset=1.0))  # ids 1..6, so padding (0) is detectable
    buffer = ReplayBuffer.create(one_transition(0.0), capacity=10)
    row_ids = np.asarray(sample_union(dataset, buffer, jax.random.PRNGKey(6), 5000)['observations'][:, 0])
    assert set(row_ids.astype(int).tolist()) == {1, 2, 3, 4, 5, 6}


def test_sample_union_under_vmap_with_shared_dataset():
    dataset = dataset_from_numpy(make_transitions(4, offset=1.0))
    buffers = jax.vmap(lambda _: ReplayBuffer.create(one_transition(0.0), capacity=8))(jnp.arange(3))
    transitions = jax.vmap(lambda r: jax.tree.map(lambda x: x + r, one_transition(0.0)))(jnp.array([50.0, 60.0, 70.0]))
    buffers = jax.vmap(ReplayBuffer.add)(buffers, transitions)
    keys = jax.random.split(jax.random.PRNGKey(7), 3)
    batches = jax.jit(jax.vmap(lambda b, k: sample_union(dataset, b, k, 2000), in_axes=(0, 0)))(buffers, keys)
    assert batches['observations'].shape == (3, 2000, OBS_DIM)
    for seed, own_row in enumerate((50, 60, 70)):
        ids = set(np.asarray(batches['observations'][seed, :, 0]).astype(int).tolist())
        assert ids == {1, 2, 3, 4, own_row}


def test_observation_statistics_values_constant_dimensions_and_errors():
    observations = np.array([[1.0, 5.0, 2.0], [3.0, 5.0, 2.0 + 1e-8], [5.0, 5.0, 2.0]], np.float32)
    mean, std = observation_statistics(observations)
    assert isinstance(mean, tuple) and all(isinstance(v, float) for v in mean + std)
    np.testing.assert_allclose(mean, [3.0, 5.0, 2.0], rtol=1e-7)
    # Dimension 0 has std sqrt(8/3); dimensions 1 (constant) and 2 (std ~5e-9 < 1e-6) are left unscaled.
    np.testing.assert_allclose(std, [np.sqrt(8.0 / 3.0), 1.0, 1.0], rtol=1e-6)
    with pytest.raises(ValueError, match='non-empty'):
        observation_statistics(np.zeros((0, 3)))
    with pytest.raises(ValueError, match=r'\(N, obs_dim\)'):
        observation_statistics(np.zeros(3))
    with pytest.raises(ValueError, match='NaN or inf'):
        observation_statistics(np.array([[1.0, np.nan]]))


# ------------------------------------------------------------------------------------------- next actions
def brute_force_next_actions(actions: np.ndarray, terminals: np.ndarray) -> np.ndarray:
    """Episode by episode: each row's next action is the next row's of the same episode; an episode's last row
    (and the data's last row, which may end a cut-off episode) keeps its own action."""
    result, start = np.empty_like(actions), 0
    ends = [i for i in range(len(terminals)) if terminals[i]] + [len(terminals) - 1]
    for end in ends:
        for i in range(start, end + 1):
            result[i] = actions[i + 1] if i < end else actions[i]
        start = end + 1
    return result


@pytest.mark.parametrize('terminals', [
    [0, 0, 1, 0, 1, 1, 0, 0, 0, 1],  # episodes of 3, 2, 1 and 4 rows, the last one ending on the last row
    [0, 1, 0, 0, 0],  # the data ends inside an episode
    [1, 1, 1],  # one-row episodes
    [0],
])
def test_next_actions_stay_within_the_episode(terminals):
    terminals = np.asarray(terminals, np.float64)
    actions = np.arange(2 * len(terminals), dtype=np.float64).reshape(-1, 2)  # row i holds (2i, 2i + 1)
    expected = brute_force_next_actions(actions, terminals)
    np.testing.assert_array_equal(actions[next_action_indices(terminals)], expected)
    arrays = dict(make_transitions(len(terminals)), actions=actions, terminals=terminals)
    dataset = dataset_from_numpy(arrays, next_actions=True)
    np.testing.assert_array_equal(dataset.data['next_actions'], expected)
    batch = dataset.sample(jax.random.PRNGKey(0), 64)  # sampled rows keep their own next action
    rows = np.asarray(batch['observations'][:, 0]).astype(int)
    np.testing.assert_array_equal(batch['next_actions'], expected[rows])


def test_next_actions_only_when_asked_and_other_keys_unchanged():
    arrays = make_transitions(12)
    plain, with_next = dataset_from_numpy(arrays), dataset_from_numpy(arrays, next_actions=True)
    assert 'next_actions' not in plain.data and set(with_next.data) == set(plain.data) | {'next_actions'}
    key = jax.random.PRNGKey(3)
    plain_batch, batch = plain.sample(key, 16), with_next.sample(key, 16)
    for name in plain_batch:  # the same rows: the batches of agents that do not ask stay bit-identical
        np.testing.assert_array_equal(batch[name], plain_batch[name])


def test_replay_buffer_fills_next_actions_as_transitions_arrive():
    """Each row gets the next transition's action once it arrives, unless the row ended an episode; the newest row
    holds its own action until then; also after the ring buffer wraps around."""
    example = {k: v[0] for k, v in dataset_from_numpy(make_transitions(1), next_actions=True).data.items()}
    buffer = ReplayBuffer.create(example, capacity=4)
    terminals = [0, 1, 0, 0, 0, 1]
    for step, terminal in enumerate(terminals):
        transition = dict(one_transition(step), actions=jnp.full((ACT_DIM,), float(step)),
                          terminals=jnp.asarray(float(terminal)))
        buffer = buffer.add(transition)
    # Rows hold transitions 4, 5, 2, 3 (capacity 4); 3 -> 4 continues, 5 ends an episode, 2 -> 3 continues.
    np.testing.assert_array_equal(buffer.data['actions'][:, 0], [4, 5, 2, 3])
    np.testing.assert_array_equal(buffer.data['next_actions'][:, 0], [5, 5, 3, 4])


def test_end_episode_cuts_the_newest_row_so_the_next_transition_does_not_continue_it():
    """A resumed online phase starts new episodes: the newest row ends its episode (terminals 1, mask kept), and the
    first transition after it does not become its next action; an empty buffer is left as it is."""
    example = {k: v[0] for k, v in dataset_from_numpy(make_transitions(1), next_actions=True).data.items()}
    empty = ReplayBuffer.create(example, capacity=3)
    np.testing.assert_array_equal(empty.end_episode().data['terminals'], empty.data['terminals'])
    buffer = empty
    for step in range(2):
        buffer = buffer.add(dict(one_transition(step), actions=jnp.full((ACT_DIM,), float(step)),
                                 terminals=jnp.asarray(0.0), masks=jnp.asarray(1.0)))
    buffer = buffer.end_episode()
    np.testing.assert_array_equal(buffer.data['terminals'], [0, 1, 0])
    np.testing.assert_array_equal(buffer.data['masks'][:2], [1, 1])
    buffer = buffer.add(dict(one_transition(2), actions=jnp.full((ACT_DIM,), 2.0), terminals=jnp.asarray(0.0)))
    np.testing.assert_array_equal(buffer.data['next_actions'][:, 0], [1, 1, 2])  # row 1 keeps its own action
