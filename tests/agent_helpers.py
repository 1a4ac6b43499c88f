"""Shared by the ReBRAC, IQL and IFQL tests: a toy batch, float64 NumPy networks, and a check that an agent
trains through the training loop's own fused, seed-vmapped path, validates and checkpoints."""

import jax
import jax.numpy as jnp
import numpy as np

from datasets.buffer import dataset_from_numpy
# re-exported: the toy batch and its sizes, the float64 MLP and twin critic
from tests.test_fql import ACTION_DIM, BATCH, OBS_DIM, np_critic, np_mlp, toy_batch  # noqa: F401
from training.checkpoint import load_checkpoint, save_checkpoint
from training.fused import (DatasetSampler, FusedUpdater, create_training_states, stacked_streams,
                            validation_losses)


def as_np(tree):
    return jax.tree_util.tree_map(lambda x: np.asarray(x, np.float64), tree)


def max_abs_difference(a, b) -> float:
    return max(float(jnp.abs(x - y).max()) for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)))


def check_fused_training(agent_class, config, tmp_path, num_updates: int = 3) -> dict:
    """Trains 2 seeds for `num_updates` updates through `training.fused` (the training loop's path: vmap over
    seeds, scan over updates, batches sampled on the device), then evaluates the validation loss and
    round-trips seed 0 through a checkpoint. Returns the (S,)-averaged metrics."""
    rng = np.random.default_rng(0)
    rows = 32
    arrays = dict(observations=rng.normal(size=(rows, OBS_DIM)),
                  actions=np.clip(0.5 * rng.normal(size=(rows, ACTION_DIM)), -1, 1),
                  rewards=-(rng.random(rows) < 0.7).astype(np.float64), masks=(rng.random(rows) < 0.9) * 1.0,
                  next_observations=rng.normal(size=(rows, OBS_DIM)), terminals=np.zeros(rows))
    data = dataset_from_numpy(arrays)
    example_batch = {k: v[:1] for k, v in data.data.items()}
    sampler = DatasetSampler(batch_size=8)
    state = create_training_states(agent_class, example_batch, config, stacked_streams([0, 1]))
    new_state, mean_info, first_nonfinite = FusedUpdater(sampler, donate_state=False)(state, data, num_updates)

    np.testing.assert_array_equal(first_nonfinite, [-1, -1])
    for key, value in mean_info.items():
        assert value.shape == (2,) and np.all(np.isfinite(value)), key
    assert not np.allclose(mean_info['critic/loss'][0], mean_info['critic/loss'][1])  # the seeds differ
    assert max_abs_difference(new_state.agent.network.params, state.agent.network.params) > 0
    np.testing.assert_array_equal(new_state.agent.network.step, [num_updates, num_updates])

    validation = validation_losses(new_state, data, jax.random.split(jax.random.PRNGKey(1), 2), sampler)
    assert set(validation) <= set(mean_info) and 'critic/loss' in validation
    assert all(v.shape == (2,) and np.all(np.isfinite(v)) for v in validation.values())

    seed0 = jax.tree_util.tree_map(lambda x: x[0], new_state)
    save_checkpoint(str(tmp_path), num_updates, seed0)
    restored, _ = load_checkpoint(str(tmp_path), num_updates, seed0)
    jax.tree_util.tree_map(np.testing.assert_array_equal, restored, seed0)
    batch = toy_batch()
    (_, info_restored), (_, info_original) = restored.agent.update(batch), seed0.agent.update(batch)
    jax.tree_util.tree_map(np.testing.assert_array_equal, info_restored, info_original)  # resumes exactly
    return mean_info
