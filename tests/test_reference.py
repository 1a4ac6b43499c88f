"""Our MFQL and FQL updates against values computed by the authors' own code.

`tests/data/mfql-golden.npz` was computed by HiccupRL/MeanFlowQL at commit 3fab100 and `tests/data/fql-golden.npz`
by seohongpark/fql at commit 719d044, both in float32 on CPU with the highest matmul precision, from recorded
inputs: a batch, small networks with random non-zero parameters, and every random draw. Each test rebuilds the
agent from the recorded config, loads the recorded parameters and optimiser state, feeds the recorded draws to
the losses, and compares every recorded output: forward passes, MFI targets, losses, best-of-N choices,
gradients, one full update (parameters, target critic, α bookkeeping), the learning rates and the α trajectory.

Tolerances: rtol 1e-5, atol 1e-6 elementwise. A step of ~1e-4 on parameters of size ~1 would drown in atol 1e-6,
so the parameter and target-critic changes (after − before) are also compared, with atol 2.5e-7: that tells
Polyak averaging with the pre-step critic from the post-step one (they differ by ≥ 1.4e-6 here) and catches
learning-rate errors above ~0.1 %. Every key of a reference file must be read as an input or compared as an
output, so a quantity added to a file without an assertion fails the test.

The comparisons are functions (`compare_mfql`, `compare_fql`, both in `COMPARISONS`) that return one result per
quantity, so that one run reports every quantity outside tolerance by name, and so that
`benchmarks/device_check.py` runs exactly these comparisons on an accelerator. They set the matmul precision
themselves (`PRECISION`), and this module does not import pytest, so they need only jax, flax, numpy and the project.

The recorded parameter paths follow the agents' module names. If a module is renamed, add the rename to
`PATH_RENAMES` (the reference values never need regenerating).
"""

import dataclasses
import json
import re
from pathlib import Path
from typing import Any, Callable, Mapping

import flax
import jax
import jax.numpy as jnp
import numpy as np

from agents.fql import FQLAgent, LossNoise as FQLNoise
from agents.mfql import (LossNoise as MFQLNoise, MFQLAgent, actor_lr_schedule, adaptive_alpha, draw_loss_noise,
                         mean_flow_target, push_loss_window)

DATA = Path(__file__).parent / 'data'
PRECISION = 'highest'  # float32 matmuls at full precision, as the references were computed
RTOL, ATOL = 1e-5, 1e-6
STEP_ATOL = 2.5e-7  # for (after − before) of parameters and target critic

# Recorded parameter path (regex) -> our path, applied in order to every `params/`, `grad/`, `target_params/`
# and `after_update/...` path, e.g. (r'/value/', r'/v_proj/') after renaming the DiT block's `value` Dense.
PATH_RENAMES: dict[str, tuple[tuple[str, str], ...]] = {'mfql': (), 'fql': ()}

AUTHORS = {'mfql': ('HiccupRL/MeanFlowQL', '3fab100a40a1069e5e6f6fcd24e489a1998cc276'),
           'fql': ('seohongpark/fql', '719d04417cb0b206deddbc7d761b3e710c3d750c')}


def load_reference(agent_name: str) -> dict[str, np.ndarray]:
    """Every array of `tests/data/<agent_name>-golden.npz`, by key."""
    with np.load(DATA / f'{agent_name}-golden.npz') as data:
        return {key: data[key] for key in data.files}


class LayoutError(ValueError):
    """The recorded parameters do not fit our network (a renamed module or a changed shape): nothing can be compared."""

    def __init__(self, what: str, message: str):
        super().__init__(message)
        self.what = what


@dataclasses.dataclass
class Comparison:
    """One agent's comparison with the authors' values: every quantity compared, by name (a key of the reference
    file, a leaf of a recorded tree, or a derived quantity), mapped to None when within tolerance, else to what
    differs."""

    agent: str
    results: dict[str, str | None]

    @property
    def failures(self) -> dict[str, str]:
        return {name: problem for name, problem in self.results.items() if problem is not None}

    def report(self) -> str:
        failures = self.failures
        heading = (f"our {self.agent.upper()} code differs from the authors' values in {len(failures)} of "
                   f'{len(self.results)} quantities:')
        return '\n'.join([heading] + [f'{name}: {problem}' for name, problem in failures.items()])


class Reference:
    """A reference file that records which keys were read as inputs and which were compared, and keeps one result
    per compared quantity (so one run reports every failing quantity)."""

    def __init__(self, agent_name: str, data: Mapping[str, np.ndarray] | None = None):
        self.agent_name = agent_name
        self.data = load_reference(agent_name) if data is None else data
        self.renames = PATH_RENAMES[agent_name]
        self.read: set[str] = set()
        self.results: dict[str, str | None] = {}

    def __getitem__(self, key: str) -> np.ndarray:
        self.read.add(key)
        return self.data[key]

    def text(self, key: str) -> str:
        return str(self[key])

    def record(self, name: str, problem: str | None) -> None:
        """Keep the result of `name`; a quantity checked twice keeps its first problem."""
        if self.results.get(name) is None:
            self.results[name] = problem

    def _our_path(self, path: str) -> str:
        for pattern, replacement in self.renames:
            path = re.sub(pattern, replacement, path)
        return path

    def _keys_under(self, prefix: str) -> dict[str, str]:
        """{our path: recorded key} of every key under `prefix/`."""
        return {self._our_path(key[len(prefix) + 1:]): key for key in self.data if key.startswith(prefix + '/')}

    def tree(self, prefix: str) -> dict[str, np.ndarray]:
        """{our path: value} of every key under `prefix/`, read as inputs."""
        return {path: self[key] for path, key in self._keys_under(prefix).items()}

    def expect(self, name: str, actual: Any, expected: Any = None, *, atol: float = ATOL, rtol: float = RTOL) -> None:
        """Compare `actual` with the recorded `name` (or with `expected`, for derived quantities)."""
        if expected is None:
            if name not in self.data:
                return self.record(name, 'computed by the test but not in the reference file')
            expected = self.data[name]
        actual, expected = np.asarray(actual), np.asarray(expected)
        if actual.shape != expected.shape:
            return self.record(name, f'shape {actual.shape}, recorded {expected.shape}')
        if expected.dtype.kind in 'iub':
            equal = np.array_equal(actual, expected)
            return self.record(name, None if equal else f'{actual.tolist()} != recorded {expected.tolist()}')
        actual, expected = actual.astype(np.float64), expected.astype(np.float64)
        excess = np.abs(actual - expected) - (atol + rtol * np.abs(expected))
        if np.all(excess <= 0):  # NaN fails
            return self.record(name, None)
        index = np.unravel_index(np.nanargmax(np.where(np.isnan(excess), np.inf, excess)), excess.shape)
        self.record(name, f'at {tuple(int(i) for i in index)}: ours {actual[index]:.9g}, recorded '
                          f'{expected[index]:.9g}, |diff| {abs(actual[index] - expected[index]):.3g} > '
                          f'atol {atol:g} + rtol {rtol:g}·|recorded|; {int(np.sum(~(excess <= 0)))} of {excess.size} '
                          'entries off')

    def expect_tree(self, name: str, actual: dict[str, Any], expected: dict[str, np.ndarray] | None = None, *,
                    atol: float = ATOL) -> None:
        """Compare a flat {path: leaf} tree with the recorded `name/<path>` keys (or with `expected`, for derived
        trees), leaf by leaf: each leaf is its own quantity."""
        recorded_keys = self._keys_under(name) if expected is None else {path: f'{name}/{path}' for path in expected}
        if set(actual) != set(recorded_keys):
            ours, recorded = set(actual), set(recorded_keys)
            only_ours, only_recorded = sorted(ours - recorded), sorted(recorded - ours)
            return self.record(name, f'parameter layout differs; only ours: {only_ours}, only recorded: '
                                     f'{only_recorded} (map renames in PATH_RENAMES)')
        for path, key in sorted(recorded_keys.items()):
            self.expect(key, actual[path], None if expected is None else expected[path], atol=atol)

    def finish(self, input_keys: tuple[str, ...]) -> Comparison:
        """The comparison, with every key that was neither compared nor a declared input that was read as a
        failure of its own."""
        for key in self.data:
            if key not in self.results and not (key in self.read and key.startswith(input_keys)):
                self.record(key, 'in the reference file, but no assertion covers it')
        return Comparison(self.agent_name, self.results)

    def layout_failure(self, error: LayoutError) -> Comparison:
        """The comparison when the recorded parameters do not fit our network: that one failure."""
        self.record(error.what, str(error))
        return Comparison(self.agent_name, self.results)


def _flat(tree: Any) -> dict[str, Any]:
    return {'/'.join(str(k.key) for k in path): leaf for path, leaf in jax.tree_util.tree_leaves_with_path(tree)}


def _nested(flat: dict[str, Any]) -> dict:
    tree: dict = {}
    for path, leaf in flat.items():
        *parents, name = path.split('/')
        node = tree
        for parent in parents:
            node = node.setdefault(parent, {})
        node[name] = jnp.asarray(leaf)
    return tree


def _loaded(flat: dict[str, np.ndarray], like: Any, what: str) -> Any:
    """The recorded tree in the structure of `like` (our freshly built tree); raises LayoutError if it does not fit."""
    ours = _flat(like)
    if set(ours) != set(flat):
        raise LayoutError(what, f'recorded parameter layout differs from ours; only ours: '
                                f'{sorted(set(ours) - set(flat))}, only recorded: {sorted(set(flat) - set(ours))}. '
                                'Map renamed modules in PATH_RENAMES.')
    for path, leaf in ours.items():
        if flat[path].shape != leaf.shape:
            raise LayoutError(what, f'{path}: recorded shape {flat[path].shape}, ours {leaf.shape}')
    return jax.tree_util.tree_map(lambda _, x: x, like, _nested(flat))


# Config keys added after the references were recorded, at the values that leave state-based agents as they were.
STATE_TASK_DEFAULTS = {'encoder': None, 'frame_stack': 1, 'p_aug': 0.0}


def _skeleton(agent_class: type, batch: dict[str, jax.Array], config: dict) -> Any:
    """The agent built from `config`, with shapes in place of arrays (nothing is initialised or compiled)."""
    config = STATE_TASK_DEFAULTS | config
    return jax.eval_shape(lambda key: agent_class.create(key, batch, config), jax.random.PRNGKey(0))


def _network(ref: Reference, network: Any) -> Any:
    """The recorded parameters and optimiser state: every count `update/optimizer_count`, first moments 0,
    second moments `update/adam_nu0`."""
    count, second_moment = int(ref['update/optimizer_count']), float(ref['update/adam_nu0'])

    def value(path: tuple, leaf: jax.ShapeDtypeStruct) -> jax.Array:
        names = {getattr(key, 'name', None) for key in path}
        fill = count if 'count' in names else 0.0 if 'mu' in names else second_moment if 'nu' in names else None
        assert fill is not None, f'unexpected optimiser state leaf {jax.tree_util.keystr(path)}'
        return jnp.full(leaf.shape, fill, leaf.dtype)

    return network.replace(params=_loaded(ref.tree('params'), network.params, 'params'),
                           step=jnp.asarray(count, jnp.int32),
                           opt_state=jax.tree_util.tree_map_with_path(value, network.opt_state))


def _batch(ref: Reference) -> dict[str, jax.Array]:
    return {key: jnp.asarray(ref[f'batch/{key}'])
            for key in ('observations', 'actions', 'rewards', 'masks', 'next_observations')}


def _check_meta(ref: Reference, agent_name: str) -> None:
    repository, commit = AUTHORS[agent_name]
    for key, expected in (('meta/authors_repository', repository), ('meta/authors_commit', commit)):
        ref.record(key, None if ref.text(key) == expected else f'{ref.text(key)!r}, expected {expected!r}')


def _compare_outputs(ref: Reference, out: dict[str, Any], params: Any, target_params: Any) -> None:
    """Compare every output; the parameters after the update also as (after − before)."""
    trees = ('grad', 'after_update/params', 'after_update/target_params')
    for name, value in out.items():
        if name not in trees:
            ref.expect(name, value)
    ref.expect_tree('grad', _flat(out['grad']))
    for name, before in (('after_update/params', _flat(params)), ('after_update/target_params', _flat(target_params))):
        ours, recorded = _flat(out[name]), ref.tree(name)
        ref.expect_tree(name, ours)
        ref.expect_tree(name.replace('after_update/', 'step (after − before) of '),
                        {path: np.float64(ours[path]) - np.float64(before[path]) for path in ours},
                        {path: np.float64(recorded[path]) - np.float64(before[path]) for path in recorded},
                        atol=STEP_ATOL)


# ----------------------------------------------------------------------------------------------------------- MFQL

MFQL_INPUTS = ('batch/', 'params/', 'target_params/', 'draws/', 'state/', 'config_json', 'forward/noisy_actions',
               'forward/times', 'mfi_wide/actions', 'update/optimizer_count', 'update/adam_nu0', 'update/our_step',
               'lr_schedule/steps', 'lr_schedule/offline_steps', 'alpha_trajectory/config_json',
               'alpha_trajectory/labels', 'alpha_trajectory/mfi_loss', 'alpha_trajectory/initial_alpha')


def _mfql_agent(ref: Reference) -> MFQLAgent:
    agent = _skeleton(MFQLAgent, _batch(ref), json.loads(ref.text('config_json')))
    return agent.replace(rng=jax.random.PRNGKey(0), network=_network(ref, agent.network),
                         target_critic_params=_loaded(ref.tree('target_params'), agent.target_critic_params,
                                                      'target_params'),
                         alpha=jnp.asarray(ref['state/alpha']),
                         mfi_loss_window=jnp.asarray(ref['state/mfi_loss_window']),
                         mfi_loss_window_count=jnp.asarray(ref['state/mfi_loss_window_count']),
                         step=jnp.asarray(ref['update/our_step']))


@jax.jit
def _mfql_outputs(agent: MFQLAgent, batch: dict, noise: MFQLNoise, eval_noise: jax.Array, forward_actions: jax.Array,
                  forward_times: jax.Array, wide_actions: jax.Array) -> dict[str, Any]:
    """Everything the reference records, computed by our code (one compilation)."""
    params, observations = agent.network.params, batch['observations']
    actor = agent.actor_fn()
    out = {'forward/g': actor(observations, forward_actions, forward_times)}

    times, noises = noise.mfi_times, noise.mfi_noise
    for prefix, actions in (('mfi', batch['actions']), ('mfi_wide', wide_actions)):
        noisy_actions, velocities = (1.0 - times) * actions + times * noises, noises - actions
        g_fn = lambda z, t: actor(observations, z, t)  # noqa: E731
        out[f'{prefix}/g'], out[f'{prefix}/target'] = mean_flow_target(
            g_fn, noisy_actions, times, velocities, agent.config['target_clip'])
        out[f'{prefix}/loss'] = agent.mfi_loss(batch | {'actions': actions}, params, times, noises)[0]
        if prefix == 'mfi':  # ġ is recorded for the data actions only
            out['mfi/g_dot'] = jax.jvp(g_fn, (noisy_actions, times), (velocities, jnp.ones_like(times)))[1]

    out['actor/actions'] = actor(observations, noise.actor_noise, jnp.ones((1, 1)))
    actor_info = agent.actor_loss(batch, params, noise.actor_noise)[1]
    out |= {f'actor/{key}': actor_info[key] for key in ('loss', 'q_loss', 'bound_loss')}

    out['critic/next_actions'], out['critic/next_q_members'] = agent.best_of_n(
        batch['next_observations'], noise.target_candidate_noise)
    critic_info = agent.critic_loss(batch, params, noise.target_candidate_noise)[1]
    out['critic/loss'], out['critic/q_mean'] = critic_info['loss'], critic_info['q_mean']
    min_agent = agent.replace(config=flax.core.FrozenDict(dict(agent.config, q_agg='min')))
    out['critic/loss_min'] = min_agent.critic_loss(batch, params, noise.target_candidate_noise)[0]
    out['eval/actions'] = agent.best_of_n(observations, eval_noise)[0]  # `sample_actions` with N > 1

    (out['total/loss'], info), out['grad'] = jax.value_and_grad(
        lambda p: agent.total_loss_from_draws(batch, p, noise), has_aux=True)(params)
    out['total/alpha'] = info['alpha']
    no_check_loss, no_check_info = agent.replace(step=agent.step + 1).total_loss_from_draws(batch, params, noise)
    out['total/loss_no_check'], out['total/alpha_no_check'] = no_check_loss, no_check_info['alpha']

    updated, update_info = agent.update_from_draws(batch, noise)
    out['update/actor_grad_norm'] = update_info['actor/grad_norm']
    out['update/critic_grad_norm'] = update_info['critic/grad_norm']
    out['update/actor_lr'] = update_info['actor/lr']
    out['after_update/params'] = updated.network.params
    out['after_update/target_params'] = updated.target_critic_params
    out['after_update/alpha'] = updated.alpha
    out['after_update/mfi_loss_window'] = updated.mfi_loss_window
    out['after_update/mfi_loss_window_count'] = updated.mfi_loss_window_count
    return out


def _alpha_trajectory(config: dict, labels: np.ndarray, mfi_losses: np.ndarray, initial_alpha: float):
    """α after each call of the update at `labels` with prescribed L_MFI, from a fresh state: `adaptive_alpha`
    gives the α of the step; on check labels L_MFI is pushed into the window (as `update_from_draws` does)."""
    alpha = jnp.asarray(initial_alpha, jnp.float32)
    window, count = jnp.zeros((config['alpha_window'],), jnp.float32), jnp.zeros((), jnp.int32)
    alphas, counts = [], []
    for label, loss in zip(labels, mfi_losses):
        alpha = adaptive_alpha(alpha, window, count, jnp.asarray(label), jnp.asarray(loss), config)
        if label % config['alpha_update_interval'] == 0:
            window, count = push_loss_window(window, count, jnp.asarray(loss))
        alphas.append(alpha)
        counts.append(count)
    return np.asarray(alphas), np.asarray(counts), np.asarray(window)


def _check_draw_rule(ref: Reference, name: str, ours: jax.Array, recorded: np.ndarray, time_steps: int) -> None:
    """Our MFI times follow the authors' rule for `time_steps`, as the recorded draws do: on the grid k/T with
    k ∈ {1..T} for T ≤ 1000, else continuous U(0, 1) (checked: off the grid, and uniform by a KS bound)."""
    def on_grid(t: np.ndarray) -> bool:
        k = np.asarray(t, np.float64) * time_steps
        return bool(np.all(np.abs(k - np.round(k)) < 1e-2) and np.all(np.round(k) >= 1))
    ours = np.sort(np.asarray(ours, np.float64).ravel())
    ks = np.max(np.abs(np.arange(1, ours.size + 1) / ours.size - ours))
    problems = [f'on the 1/T grid: ours {on_grid(ours)}, recorded {on_grid(recorded)}'] if (
        on_grid(ours) != on_grid(recorded)) else []
    if ours.min() < 0.0 or ours.max() > 1.0 or ks > 2.0 / np.sqrt(ours.size):
        problems.append(f'range [{ours.min():.3g}, {ours.max():.3g}], KS distance to U(0, 1) {ks:.3g}')
    ref.record(name, f'T = {time_steps}: ' + '; '.join(problems) if problems else None)


def compare_mfql(data: Mapping[str, np.ndarray] | None = None) -> Comparison:
    """Our MFQL against the values recorded by HiccupRL/MeanFlowQL (`data`: the reference file's arrays, by default
    `load_reference('mfql')`), at `PRECISION`."""
    ref = Reference('mfql', data)
    with jax.default_matmul_precision(PRECISION):
        try:
            agent, batch = _mfql_agent(ref), _batch(ref)
        except LayoutError as error:
            return ref.layout_failure(error)
        noise = MFQLNoise(target_candidate_noise=jnp.asarray(ref['draws/target_candidate_noise']),
                          actor_noise=jnp.asarray(ref['draws/actor_noise']),
                          mfi_times=jnp.asarray(ref['draws/mfi_times']), mfi_noise=jnp.asarray(ref['draws/mfi_noise']))
        out = _mfql_outputs(agent, batch, noise, jnp.asarray(ref['draws/eval_candidate_noise']),
                            jnp.asarray(ref['forward/noisy_actions']), jnp.asarray(ref['forward/times']),
                            jnp.asarray(ref['mfi_wide/actions']))
        _compare_outputs(ref, out, agent.network.params, agent.target_critic_params)

        # Step numbering: the authors' 0-based loop index is our update index = step + 1.
        ref.expect('update/authors_current_step', agent.step + 1)
        ref.expect('update/critic_lr', np.float32(agent.config['critic_lr']))

        schedule_config = dict(agent.config, offline_steps=int(ref['lr_schedule/offline_steps']))
        ref.expect('lr_schedule/actor_lr', jax.vmap(actor_lr_schedule(schedule_config))(ref['lr_schedule/steps']))

        trajectory_config = json.loads(ref.text('alpha_trajectory/config_json'))
        alphas, counts, window = _alpha_trajectory(trajectory_config, ref['alpha_trajectory/labels'],
                                                   ref['alpha_trajectory/mfi_loss'],
                                                   float(ref['alpha_trajectory/initial_alpha']))
        ref.expect('alpha_trajectory/alpha', alphas)
        ref.expect('alpha_trajectory/window_count', counts)
        ref.expect('alpha_trajectory/final_window', window)

        drawn = draw_loss_noise(jax.random.PRNGKey(0), 4096, batch['actions'].shape[1], agent.config)
        _check_draw_rule(ref, 'MFI time draws', drawn.mfi_times, ref['draws/mfi_times'], agent.config['time_steps'])
    _check_meta(ref, 'mfql')
    return ref.finish(MFQL_INPUTS)


def test_mfql_update_equals_the_authors_code():
    comparison = compare_mfql()
    assert not comparison.failures, comparison.report()


# ------------------------------------------------------------------------------------------------------------ FQL

FQL_INPUTS = ('batch/', 'params/', 'target_params/', 'draws/', 'config_json', 'forward/x', 'forward/times',
              'update/optimizer_count', 'update/adam_nu0')


@jax.jit
def _fql_outputs(agent: FQLAgent, batch: dict, noise: FQLNoise, forward_x: jax.Array,
                 forward_times: jax.Array) -> dict[str, Any]:
    params, observations = agent.network.params, batch['observations']
    out = {'forward/velocity': agent.velocity(observations, forward_x, forward_times),
           'forward/one_step': agent.one_step_actions(observations, forward_x),
           'actor/teacher_actions': agent.flow_teacher_actions(observations, noise.policy_noise),
           'actor/one_step_actions': agent.one_step_actions(observations, noise.policy_noise)}
    actor_info = agent.actor_loss(batch, params, noise)[1]
    out |= {f'actor/{key}': actor_info[key] for key in ('bc_flow_loss', 'distill_loss', 'q_loss', 'loss')}

    next_actions = jnp.clip(agent.one_step_actions(batch['next_observations'], noise.next_noise), -1.0, 1.0)
    out['critic/next_actions'] = next_actions
    out['critic/next_q_members'] = agent.network.select('critic')(
        batch['next_observations'], next_actions, params={'modules_critic': agent.target_critic_params})
    critic_info = agent.critic_loss(batch, params, noise.next_noise)[1]
    out['critic/loss'], out['critic/q_mean'] = critic_info['loss'], critic_info['q_mean']
    min_agent = agent.replace(config=flax.core.FrozenDict(dict(agent.config, q_agg='min')))
    out['critic/loss_min'] = min_agent.critic_loss(batch, params, noise.next_noise)[0]

    out['total/loss'], out['grad'] = jax.value_and_grad(
        lambda p: agent.total_loss_from_draws(batch, p, noise)[0])(params)
    updated, _ = agent.update_from_draws(batch, noise)
    out['after_update/params'] = updated.network.params
    out['after_update/target_params'] = updated.target_critic_params
    return out


def compare_fql(data: Mapping[str, np.ndarray] | None = None) -> Comparison:
    """Our FQL against the values recorded by seohongpark/fql (`data`: the reference file's arrays, by default
    `load_reference('fql')`), at `PRECISION`."""
    ref = Reference('fql', data)
    with jax.default_matmul_precision(PRECISION):
        batch = _batch(ref)
        agent = _skeleton(FQLAgent, batch, json.loads(ref.text('config_json')))
        try:
            agent = agent.replace(rng=jax.random.PRNGKey(0), network=_network(ref, agent.network),
                                  target_critic_params=_loaded(ref.tree('target_params'), agent.target_critic_params,
                                                               'target_params'))
        except LayoutError as error:
            return ref.layout_failure(error)
        noise = FQLNoise(*(jnp.asarray(ref[f'draws/{key}'])
                           for key in ('flow_noise', 'flow_times', 'policy_noise', 'next_noise')))
        out = _fql_outputs(agent, batch, noise, jnp.asarray(ref['forward/x']), jnp.asarray(ref['forward/times']))
        _compare_outputs(ref, out, agent.network.params, agent.target_critic_params)
        ref.expect('update/lr', np.float32(agent.config['lr']))
    _check_meta(ref, 'fql')
    return ref.finish(FQL_INPUTS)


def test_fql_update_equals_the_authors_code():
    comparison = compare_fql()
    assert not comparison.failures, comparison.report()


# Every comparison by agent name (benchmarks/device_check.py runs them all on the device).
COMPARISONS: dict[str, Callable[[Mapping[str, np.ndarray] | None], Comparison]] = {'mfql': compare_mfql,
                                                                                   'fql': compare_fql}
