"""Flow Q-learning (FQL; Park, Li & Levine 2025, arXiv 2502.02538), faithful to the official defaults.

Three networks over one parameter tree, trained by one Adam step on the sum of all losses:
  v_θ(s, x, t)   `actor_bc_flow`       behaviour-cloning flow (velocity field), 4×512 GELU MLP, no LayerNorm;
  μ_ω(s, z)      `actor_onestep_flow`  one-step policy, distilled from v_θ and trained to maximise Q;
  Q_φ,m(s, a)    `critic`              2-member ensemble, 4×512 GELU MLP with LayerNorm.
The target critic Q_φ̄ is a separate pytree (`target_critic_params`), outside the optimiser.

Flow convention (FQL's, the reverse of MeanFlowQL's): x⁰ ~ N(0, I) is noise, x¹ = a is the action,
x^t = (1 − t)·x⁰ + t·x¹, and the conditional velocity is x¹ − x⁰.

Gradient convention (as in FQL): a network sees gradients only where a loss passes
`params=grad_params`; every other call uses the current parameters as constants. Where the maths
needs a stop-gradient we also write `jax.lax.stop_gradient` explicitly.

Visual tasks (`encoder` = 'impala_small', networks/encoders.py): as in FQL, each network has its own encoder,
trained by that network's losses: the critic's sits inside the critic module (so the target critic has its own
Polyak-averaged copy), and v_θ and μ_ω each have one (`actor_bc_flow_encoder`, `actor_onestep_flow_encoder`)
whose features are computed once per batch and fed to the MLP in place of the state. As in FQL,
observations are not normalised by default; `normalize_observations=True` z-scores them exactly as MFQL does
(training-set statistics in the config), for comparisons where both agents should see the same inputs.

Randomness is drawn in one place, `draw_loss_noise`; the losses are deterministic functions of (batch, params,
draws). The update equals the authors' (seohongpark/fql) at float32 precision: tests/test_reference.py checks it
against values computed by their code. Where we differ from their code: docs/reproducing.md, "Deliberate
differences from the authors' code".
"""

from typing import Any, NamedTuple

import flax
import jax
import jax.numpy as jnp
import ml_collections
import optax

from agents.train_state import (TrainState, freeze_config, nonpytree_field, normalize_batch,
                                normalize_observations, polyak_update)
from networks.encoders import make_encoder
from networks.mlp import MLP, CriticEnsemble
from networks.module_dict import ModuleDict

Batch = dict[str, jax.Array]
Info = dict[str, jax.Array]

BATCH_KEYS = ('observations', 'actions', 'rewards', 'masks', 'next_observations')


class LossNoise(NamedTuple):
    """All randomness of one loss evaluation, drawn up front so each loss is a deterministic function."""

    flow_noise: jax.Array  # x⁰ (B, action_dim): start of the BC flow path
    flow_times: jax.Array  # t (B, 1) ~ U(0, 1): time on the BC flow path
    policy_noise: jax.Array  # z (B, action_dim): input of μ_ω for the distillation and Q losses
    next_noise: jax.Array  # z' (B, action_dim): input of μ_ω(s', z') for the Bellman target


def draw_loss_noise(rng: jax.Array, batch_size: int, action_dim: int) -> LossNoise:
    """Independent standard-normal noises and U(0, 1) times for one batch."""
    flow_rng, time_rng, policy_rng, next_rng = jax.random.split(rng, 4)
    return LossNoise(
        flow_noise=jax.random.normal(flow_rng, (batch_size, action_dim)),
        flow_times=jax.random.uniform(time_rng, (batch_size, 1)),
        policy_noise=jax.random.normal(policy_rng, (batch_size, action_dim)),
        next_noise=jax.random.normal(next_rng, (batch_size, action_dim)),
    )


class FQLAgent(flax.struct.PyTreeNode):
    """FQL agent state: rng, networks + Adam state, target critic params, and the (static) config."""

    rng: jax.Array
    network: TrainState
    target_critic_params: Any
    config: Any = nonpytree_field()

    # ----------------------------------------------------------------------------------- networks
    def encode(self, actor_name: str, observations: jax.Array, params: Any = None) -> jax.Array:
        """The input features of actor `actor_name` ('actor_bc_flow' or 'actor_onestep_flow'): its encoder's
        output (B, 512) for frames (B, H, W, C) with an `encoder`, else the observations themselves."""
        if self.config['encoder'] is None:
            return observations
        return self.network.select(f'{actor_name}_encoder')(observations, params=params)

    def velocity(self, features: jax.Array, x: jax.Array, times: jax.Array, params: Any = None) -> jax.Array:
        """v_θ(s, x, t): (..., feature_dim), (..., action_dim), (..., 1) -> (..., action_dim). Raw t is an input.
        `features` = `encode('actor_bc_flow', s)` (the state itself without an encoder)."""
        inputs = jnp.concatenate([features, x, times], axis=-1)
        return self.network.select('actor_bc_flow')(inputs, params=params)

    def one_step_actions(self, features: jax.Array, noise: jax.Array, params: Any = None) -> jax.Array:
        """μ_ω(s, z), unclipped: (..., feature_dim), (..., action_dim) -> (..., action_dim). No time input.
        `features` = `encode('actor_onestep_flow', s)` (the state itself without an encoder)."""
        inputs = jnp.concatenate([features, noise], axis=-1)
        return self.network.select('actor_onestep_flow')(inputs, params=params)

    def flow_teacher_actions(self, features: jax.Array, noise: jax.Array) -> jax.Array:
        """Euler integration of the BC flow from x = z, under stop-gradient, clipped to [-1, 1].

        x ← z;  for i = 0 … K−1:  x ← x + v_θ(s, x, i/K) / K;  return clip(x, −1, 1),  K = `flow_steps`.
        Shapes: (B, feature_dim) (v_θ's features of s), (B, action_dim) -> (B, action_dim).
        """
        num_steps = self.config['flow_steps']
        x = noise
        for i in range(num_steps):  # K is a small static int (10): unrolled, as in FQL
            times = jnp.full((*x.shape[:-1], 1), i / num_steps, dtype=x.dtype)
            x = x + self.velocity(features, x, times) / num_steps
        return jax.lax.stop_gradient(jnp.clip(x, -1.0, 1.0))

    # ------------------------------------------------------------------------------------- losses
    def critic_loss(self, batch: Batch, grad_params: Any, next_noise: jax.Array) -> tuple[jax.Array, Info]:
        """TD regression of both critic members onto one target.

        a' = clip(μ_ω(s', z'), −1, 1)   with a single fresh z' (B, A) per transition (no best-of-N);
        y  = r + γ · mask · agg_m Q_φ̄,m(s', a')          (B,), agg = `q_agg` ∈ {mean, min} over m;
        L  = mean_{m, b} (Q_φ,m(s_b, a_b) − y_b)²          over the (2, B) ensemble output.
        """
        next_features = self.encode('actor_onestep_flow', batch['next_observations'])
        next_actions = jnp.clip(self.one_step_actions(next_features, next_noise), -1.0, 1.0)
        next_q = self.network.select('critic')(batch['next_observations'], next_actions,
                                               params={'modules_critic': self.target_critic_params})  # (2, B)
        next_q = next_q.min(axis=0) if self.config['q_agg'] == 'min' else next_q.mean(axis=0)
        target_q = jax.lax.stop_gradient(batch['rewards'] + self.config['discount'] * batch['masks'] * next_q)
        q = self.network.select('critic')(batch['observations'], batch['actions'], params=grad_params)  # (2, B)
        loss = jnp.mean((q - target_q) ** 2)
        return loss, {'loss': loss, 'q_mean': q.mean(), 'q_max': q.max(), 'q_min': q.min(),
                      'target_q_mean': target_q.mean()}

    def actor_loss(self, batch: Batch, grad_params: Any, noise: LossNoise) -> tuple[jax.Array, Info]:
        """L_actor = L_flow + α · L_distill + L_Q   (α weights the distillation term only).

        L_flow    = mean_{b, j} (v_θ(s, x^t, t) − (x¹ − x⁰))²,  x^t = (1 − t)x⁰ + t·a   (B, A), t (B, 1);
        L_distill = mean_{b, j} (μ_ω(s, z) − sg(teacher(s, z)))²   (teacher: `flow_teacher_actions`);
        L_Q       = −mean_b mean_m Q_φ,m(s, clip(μ_ω(s, z), −1, 1)), the critic held fixed;
                    with `normalize_q_loss`, L_Q is divided by sg(mean_b |mean_m Q|).
        Also reported: `mse` = mean (clip(μ_ω(s, z)) − a)², the one-step policy's distance to the data.
        """
        observations, actions = batch['observations'], batch['actions']
        times = noise.flow_times
        x_t = (1.0 - times) * noise.flow_noise + times * actions
        target_velocity = actions - noise.flow_noise
        bc_features = self.encode('actor_bc_flow', observations, params=grad_params)
        bc_flow_loss = jnp.mean((self.velocity(bc_features, x_t, times, params=grad_params) - target_velocity) ** 2)

        # The teacher's output is under stop-gradient, so the features may come from grad_params (same values).
        teacher_actions = self.flow_teacher_actions(bc_features, noise.policy_noise)
        policy_features = self.encode('actor_onestep_flow', observations, params=grad_params)
        policy_actions = self.one_step_actions(policy_features, noise.policy_noise, params=grad_params)
        distill_loss = jnp.mean((policy_actions - teacher_actions) ** 2)

        policy_actions = jnp.clip(policy_actions, -1.0, 1.0)
        q = self.network.select('critic')(observations, policy_actions).mean(axis=0)  # (B,), critic not in grad
        q_loss = -q.mean()
        if self.config['normalize_q_loss']:
            q_loss = q_loss / jax.lax.stop_gradient(jnp.abs(q).mean())

        loss = bc_flow_loss + self.config['alpha'] * distill_loss + q_loss
        mse = jnp.mean((policy_actions - actions) ** 2)
        return loss, {'loss': loss, 'bc_flow_loss': bc_flow_loss, 'distill_loss': distill_loss,
                      'q_loss': q_loss, 'q': q.mean(), 'mse': mse}

    def total_loss(self, batch: Batch, grad_params: Any, rng: jax.Array) -> tuple[jax.Array, Info]:
        """`total_loss_from_draws` with the noise of `draw_loss_noise(rng)`."""
        return self.total_loss_from_draws(batch, grad_params, draw_loss_noise(rng, *batch['actions'].shape))

    def total_loss_from_draws(self, batch: Batch, grad_params: Any, noise: LossNoise) -> tuple[jax.Array, Info]:
        """L_critic + L_actor; info keys are `critic/…` and `actor/…`.
        `batch` holds raw observations; they are z-scored here (if `normalize_observations`)."""
        batch = normalize_batch(self.config, batch)
        critic_loss, critic_info = self.critic_loss(batch, grad_params, noise.next_noise)
        actor_loss, actor_info = self.actor_loss(batch, grad_params, noise)
        info = {f'critic/{k}': v for k, v in critic_info.items()}
        info.update({f'actor/{k}': v for k, v in actor_info.items()})
        return critic_loss + actor_loss, info

    # ------------------------------------------------------------------------------ public interface
    def validation_metrics(self, batch: Batch, rng: jax.Array) -> Info:
        """`total_loss`'s info on a validation batch, with the current parameters and no update."""
        return self.total_loss(batch, self.network.params, rng)[1]

    @jax.jit
    def update(self, batch: Batch) -> tuple['FQLAgent', Info]:
        """`update_from_draws` with this step's noise from the agent's key; pure (scan/vmap safe)."""
        new_rng, loss_rng = jax.random.split(self.rng)
        noise = draw_loss_noise(loss_rng, *batch['actions'].shape)
        return self.replace(rng=new_rng).update_from_draws(batch, noise)

    def update_from_draws(self, batch: Batch, noise: LossNoise) -> tuple['FQLAgent', Info]:
        """One Adam step on `total_loss_from_draws`, then the Polyak target update. Pure; the agent's key is
        left as it is."""
        new_network, info = self.network.apply_loss_fn(lambda p: self.total_loss_from_draws(batch, p, noise))
        # As in FQL, the target follows the PRE-step critic params (φ̄ ← τφ_old + (1 − τ)φ̄): a one-step lag.
        new_target = polyak_update(self.network.params['modules_critic'], self.target_critic_params,
                                   self.config['tau'])
        return self.replace(network=new_network, target_critic_params=new_target), info

    @jax.jit
    def sample_actions(self, observations: jax.Array, rng: jax.Array, temperature: float = 1.0) -> jax.Array:
        """a = clip(μ_ω(s, z), −1, 1), z ~ N(0, temperature² I): (..., obs_dim) (frames (..., H, W, C) with an
        encoder) -> (..., action_dim).

        Temperature 1 is the trained policy (FQL's authors accept a temperature and ignore it); other values
        are for diagnostics: 0 gives the deterministic action μ_ω(s, 0).
        """
        features = self.encode('actor_onestep_flow', normalize_observations(self.config, observations))
        noise = temperature * jax.random.normal(rng, (*features.shape[:-1], self.config['action_dim']))
        return jnp.clip(self.one_step_actions(features, noise), -1.0, 1.0)

    @classmethod
    def create(cls, rng: jax.Array, example_batch: Batch, config: ml_collections.ConfigDict) -> 'FQLAgent':
        """Initialise all networks from `rng`; pure, so `jax.vmap` over `rng` builds several seeds at once.

        `example_batch` fixes the shapes: observations (B, obs_dim) (frames (B, H, W, C) with an `encoder`),
        actions (B, action_dim).
        """
        config = _frozen_config(config, example_batch)
        observations, actions = example_batch['observations'], example_batch['actions']
        action_dim = config['action_dim']
        actor_dims = (*config['actor_hidden_dims'], action_dim)
        modules = {
            'actor_bc_flow': MLP(actor_dims, layer_norm=config['actor_layer_norm']),
            'actor_onestep_flow': MLP(actor_dims, layer_norm=config['actor_layer_norm']),
            'critic': CriticEnsemble(config['value_hidden_dims'], layer_norm=config['layer_norm'], num_members=2,
                                     encoder=make_encoder(config['encoder'])),
        }
        inputs = {}
        features = observations
        if config['encoder'] is not None:
            for actor_name in ('actor_bc_flow', 'actor_onestep_flow'):
                modules[f'{actor_name}_encoder'] = make_encoder(config['encoder'])
                inputs[f'{actor_name}_encoder'] = (observations,)
            features = jnp.zeros((observations.shape[0], modules['actor_bc_flow_encoder'].mlp_hidden_dims[-1]))
        network_def = ModuleDict(modules)
        times = jnp.zeros((*actions.shape[:-1], 1), actions.dtype)
        rng, init_rng = jax.random.split(rng)
        params = network_def.init(
            init_rng,
            actor_bc_flow=(jnp.concatenate([features, actions, times], axis=-1),),
            actor_onestep_flow=(jnp.concatenate([features, actions], axis=-1),),
            critic=(observations, actions),
            **inputs,
        )['params']
        network = TrainState.create(network_def, params, optax.adam(learning_rate=config['lr']))
        target_critic_params = jax.tree_util.tree_map(jnp.copy, params['modules_critic'])
        return cls(rng=rng, network=network, target_critic_params=target_critic_params, config=config)


AGENT_CLASS = FQLAgent  # the class the training loop builds (agents/__init__.py)
DISPLAY_NAME = 'FQL'  # how results tables name the agent (its paper's name)


def _frozen_config(config: ml_collections.ConfigDict | dict, example_batch: Batch) -> flax.core.FrozenDict:
    """Validate the config (every value against `CONFIG_RULES` and the values together, by `freeze_config`) and
    batch, add `action_dim`, and freeze it (hashable, so jit can key on it)."""
    return freeze_config(config, get_config(), example_batch, BATCH_KEYS, rules=CONFIG_RULES)


CONFIG_RULES = {  # what each get_config key may be (agents/config_rules.py); checked before any compute
    'lr': '> 0', 'batch_size': 'int > 0', 'actor_hidden_dims': 'ints > 0', 'value_hidden_dims': 'ints > 0',
    'layer_norm': 'bool', 'actor_layer_norm': 'bool', 'discount': '(0, 1]', 'tau': '(0, 1]',
    'q_agg': ('mean', 'min'), 'alpha': '>= 0', 'flow_steps': 'int > 0', 'normalize_q_loss': 'bool',
    'normalize_observations': 'bool', 'encoder': (None, 'impala', 'impala_small', 'impala_debug'),
    'frame_stack': 'int > 0', 'p_aug': '[0, 1]',
}


def get_config() -> ml_collections.ConfigDict:
    """FQL defaults (official `agents/fql.py`); per-task values (alpha, discount, q_agg) come from configs.py."""
    return ml_collections.ConfigDict(dict(
        agent_name='fql',  # registry name (agents/__init__.py)
        lr=3e-4,  # Adam learning rate for all networks; constant, no clipping
        batch_size=256,  # transitions per update (read by the training loop)
        actor_hidden_dims=(512, 512, 512, 512),  # hidden sizes of v_θ and μ_ω
        value_hidden_dims=(512, 512, 512, 512),  # hidden sizes of each critic member
        layer_norm=True,  # LayerNorm after every hidden activation of the critic
        actor_layer_norm=False,  # LayerNorm in v_θ and μ_ω (FQL: off)
        discount=0.99,  # γ of the Bellman target (0.995 for long-horizon tasks, see configs.py)
        tau=0.005,  # Polyak rate of the target critic
        q_agg='mean',  # aggregation of the 2 target-critic members in the Bellman target: 'mean' or 'min'
        alpha=10.0,  # weight of the distillation loss (BC strength); tuned per environment
        flow_steps=10,  # Euler steps of the BC flow teacher
        normalize_q_loss=False,  # divide L_Q by sg(mean |Q|) (off in the paper)
        normalize_observations=False,  # z-score observations with the training set's statistics (FQL: off)
        observation_mean=None,  # per-dimension mean; None: the training loop fills in the training set's
        observation_std=None,  # per-dimension std (dimensions with std < 1e-6: 1); None: filled likewise
        encoder=ml_collections.config_dict.placeholder(str),  # pixel encoder (networks/encoders.py); None: states
        frame_stack=1,  # frames per observation on visual tasks (read by the data and the envs; FQL: 3)
        p_aug=0.0,  # probability of FQL's random-shift augmentation of a visual batch (read by the data; FQL: 0.5)
    ))
