"""Implicit flow Q-learning (IFQL), FQL's flow variant of IDQL: a behaviour-cloning flow policy, IQL's value
learning, and rejection sampling by Q when acting. Defaults are FQL's `agents/ifql.py`.

Networks, one parameter tree, one Adam step on the sum of the three losses:
  v_θ(s, x, t)  `actor_bc_flow`  BC flow velocity field, 4×512 GELU MLP, no LayerNorm (FQL's BC flow);
  V_ψ(s)        `value`          4×512 GELU MLP with LayerNorm;
  Q_φ,m(s, a)   `critic`         2-member ensemble, 4×512 GELU MLP with LayerNorm.
The target critic Q_φ̄ (`target_critic_params`) is outside the optimiser and follows φ by Polyak averaging.
V and Q learn exactly as in IQL (`agents.iql.ExpectileValueLearning`); the flow is trained by BC alone.

Flow convention (FQL's): x⁰ ~ N(0, I), x¹ = a, x^t = (1 − t)·x⁰ + t·x¹, conditional velocity x¹ − x⁰.
Acting: N flow samples per state, each integrated by K Euler steps and clipped to [−1, 1]; the agent takes
the one with the highest min_m Q_φ,m(s, ·).

Visual tasks (`encoder` = 'impala_small', networks/encoders.py): as in FQL, V, Q and v_θ each have their own
encoder, trained by their own losses. V's and Q's sit inside their modules (the target critic holds a Polyak-averaged
copy of Q's); v_θ's (`actor_bc_flow_encoder`) is applied once per state and its features feed every Euler step and
every one of the N samples.

Gradient convention (as in FQL): a network sees gradients only where a loss passes `params=grad_params`.
"""

from typing import Any, NamedTuple

import flax
import jax
import jax.numpy as jnp
import ml_collections

from agents.iql import ExpectileValueLearning, create_with_actor
from agents.train_state import TrainState, freeze_config, nonpytree_field, normalize_batch, normalize_observations
from networks.encoders import make_encoder
from networks.mlp import MLP

Batch = dict[str, jax.Array]
Info = dict[str, jax.Array]


class LossNoise(NamedTuple):
    """All randomness of one loss evaluation, drawn up front so each loss is a deterministic function."""

    flow_noise: jax.Array  # x⁰ (B, action_dim): start of the BC flow path
    flow_times: jax.Array  # t (B, 1) ~ U(0, 1): time on the BC flow path


def draw_loss_noise(rng: jax.Array, batch_size: int, action_dim: int) -> LossNoise:
    """A standard-normal x⁰ and a U(0, 1) time per transition."""
    noise_rng, time_rng = jax.random.split(rng)
    return LossNoise(flow_noise=jax.random.normal(noise_rng, (batch_size, action_dim)),
                     flow_times=jax.random.uniform(time_rng, (batch_size, 1)))


class IFQLAgent(ExpectileValueLearning, flax.struct.PyTreeNode):
    """IFQL agent state: rng, networks + Adam state, target critic params, and the (static) config."""

    rng: jax.Array
    network: TrainState
    target_critic_params: Any
    config: Any = nonpytree_field()

    def encode(self, observations: jax.Array, params: Any = None) -> jax.Array:
        """v_θ's input features: its encoder's output (..., 512) for frames (..., H, W, C) with an `encoder`, else
        the observations themselves."""
        if self.config['encoder'] is None:
            return observations
        return self.network.select('actor_bc_flow_encoder')(observations, params=params)

    def velocity(self, features: jax.Array, x: jax.Array, times: jax.Array, params: Any = None) -> jax.Array:
        """v_θ(s, x, t): (..., feature_dim), (..., action_dim), (..., 1) -> (..., action_dim). Raw t is an input.
        `features` = `encode(s)` (the state itself without an encoder)."""
        return self.network.select('actor_bc_flow')(jnp.concatenate([features, x, times], axis=-1), params=params)

    def flow_actions(self, features: jax.Array, noise: jax.Array) -> jax.Array:
        """x ← z;  for i = 0 … K−1:  x ← x + v_θ(s, x, i/K) / K;  return clip(x, −1, 1),  K = `flow_steps`.
        Shapes: (..., feature_dim) (`encode(s)`), (..., action_dim) -> (..., action_dim)."""
        num_steps = self.config['flow_steps']
        x = noise
        for i in range(num_steps):  # K is a small static int (10): unrolled, as in FQL
            x = x + self.velocity(features, x, jnp.full((*x.shape[:-1], 1), i / num_steps, x.dtype)) / num_steps
        return jnp.clip(x, -1.0, 1.0)

    def rejection_sample(self, observations: jax.Array, noise: jax.Array) -> jax.Array:
        """argmax_n min_m Q_φ,m(s, a_n) over the flow samples a_n = flow_actions(s, z_n), n = 1 … N.

        observations (..., obs_dim) (normalised if the agent normalises; frames (..., H, W, C) with an `encoder`),
        noise (..., N, action_dim) -> (..., action_dim). Ties go to the lowest n. The flow encodes each state once;
        the critic, whose encoder is inside it, encodes its N copies.
        """
        observation_rank = 1 if self.config['encoder'] is None else 3  # (dim,) states, (H, W, C) frames
        observation_shape = observations.shape[observations.ndim - observation_rank:]
        repeated = jnp.broadcast_to(jnp.expand_dims(observations, -observation_rank - 1),
                                    (*noise.shape[:-1], *observation_shape))
        features = self.encode(observations)
        features = jnp.broadcast_to(features[..., None, :], (*noise.shape[:-1], features.shape[-1]))
        candidates = self.flow_actions(features, noise)  # (..., N, A)
        q = self.network.select('critic')(repeated, candidates).min(axis=0)  # (..., N)
        best = jnp.argmax(q, axis=-1)
        return jnp.take_along_axis(candidates, best[..., None, None], axis=-2)[..., 0, :]

    def actor_loss(self, batch: Batch, grad_params: Any, noise: LossNoise) -> tuple[jax.Array, Info]:
        """BC flow matching: L_flow = mean_{b, j} (v_θ(s, x^t, t) − (a − x⁰))²,  x^t = (1 − t)x⁰ + t·a."""
        actions, times = batch['actions'], noise.flow_times
        x_t = (1.0 - times) * noise.flow_noise + times * actions
        features = self.encode(batch['observations'], params=grad_params)
        predicted = self.velocity(features, x_t, times, params=grad_params)
        loss = jnp.mean((predicted - (actions - noise.flow_noise)) ** 2)
        return loss, {'loss': loss}

    def total_loss(self, batch: Batch, grad_params: Any, rng: jax.Array) -> tuple[jax.Array, Info]:
        """L_V + L_Q + L_flow with the flow noise drawn from `rng`; info keys are `value/…`, `critic/…`,
        `actor/…`. `batch` holds raw observations; they are z-scored here (if `normalize_observations`)."""
        batch = normalize_batch(self.config, batch)
        noise = draw_loss_noise(rng, *batch['actions'].shape)
        value_loss, value_info = self.value_loss(batch, grad_params)
        critic_loss, critic_info = self.critic_loss(batch, grad_params)
        actor_loss, actor_info = self.actor_loss(batch, grad_params, noise)
        info = {f'value/{k}': v for k, v in value_info.items()}
        info.update({f'critic/{k}': v for k, v in critic_info.items()})
        info.update({f'actor/{k}': v for k, v in actor_info.items()})
        return value_loss + critic_loss + actor_loss, info

    # ------------------------------------------------------------------------------ public interface
    def validation_metrics(self, batch: Batch, rng: jax.Array) -> Info:
        """`total_loss`'s info on a validation batch, with the current parameters and no update."""
        return self.total_loss(batch, self.network.params, rng)[1]

    @jax.jit
    def update(self, batch: Batch) -> tuple['IFQLAgent', Info]:
        """One Adam step on `total_loss`, then the Polyak target update; pure (scan/vmap safe)."""
        new_rng, loss_rng = jax.random.split(self.rng)
        new_network, info = self.network.apply_loss_fn(lambda p: self.total_loss(batch, p, loss_rng))
        return self.replace(rng=new_rng, network=new_network,
                            target_critic_params=self.next_target_critic_params()), info

    @jax.jit
    def sample_actions(self, observations: jax.Array, rng: jax.Array, temperature: float = 1.0) -> jax.Array:
        """`rejection_sample` over N = `num_samples` flows from z_n ~ N(0, temperature² I):
        (..., obs_dim) (frames (..., H, W, C) with an `encoder`) -> (..., action_dim) in [−1, 1].

        Temperature 1 is the trained policy (FQL's IFQL ignores a temperature); 0 makes all N samples equal.
        """
        batch_shape = observations.shape[:observations.ndim - (1 if self.config['encoder'] is None else 3)]
        shape = (*batch_shape, self.config['num_samples'], self.config['action_dim'])
        noise = temperature * jax.random.normal(rng, shape)
        return self.rejection_sample(normalize_observations(self.config, observations), noise)

    @classmethod
    def create(cls, rng: jax.Array, example_batch: Batch, config: ml_collections.ConfigDict) -> 'IFQLAgent':
        """Initialise all networks from `rng`; pure, so `jax.vmap` over `rng` builds several seeds at once.

        `example_batch` fixes the shapes: observations (B, obs_dim) (frames (B, H, W, C) with an `encoder`),
        actions (B, action_dim).
        """
        config = freeze_config(config, get_config(), example_batch, rules=CONFIG_RULES)
        observations, actions = example_batch['observations'], example_batch['actions']
        flow = MLP((*config['actor_hidden_dims'], config['action_dim']), layer_norm=config['actor_layer_norm'])
        actor_modules = {}
        features = observations
        if config['encoder'] is not None:
            encoder = make_encoder(config['encoder'])
            actor_modules['actor_bc_flow_encoder'] = (encoder, (observations,))
            features = jnp.zeros((observations.shape[0], encoder.mlp_hidden_dims[-1]))
        times = jnp.zeros((*actions.shape[:-1], 1), actions.dtype)
        actor_modules['actor_bc_flow'] = (flow, (jnp.concatenate([features, actions, times], axis=-1),))
        return create_with_actor(cls, rng, example_batch, config, actor_modules)


AGENT_CLASS = IFQLAgent  # the class the training loop builds (agents/__init__.py)
DISPLAY_NAME = 'IFQL'  # how results tables name the agent (its paper's name)


CONFIG_RULES = {  # what each get_config key may be (agents/config_rules.py); checked before any compute
    'lr': '> 0', 'batch_size': 'int > 0', 'actor_hidden_dims': 'ints > 0', 'value_hidden_dims': 'ints > 0',
    'layer_norm': 'bool', 'actor_layer_norm': 'bool', 'discount': '(0, 1]', 'tau': '(0, 1]',
    'expectile': '(0, 1)', 'num_samples': 'int > 0', 'evaluation_temperature': '>= 0', 'flow_steps': 'int > 0',
    'normalize_observations': 'bool', 'encoder': (None, 'impala', 'impala_small', 'impala_debug'),
    'frame_stack': 'int > 0', 'p_aug': '[0, 1]',
}


def get_config() -> ml_collections.ConfigDict:
    """IFQL defaults (FQL's `agents/ifql.py`); per-task values (num_samples, discount) come from configs.py."""
    return ml_collections.ConfigDict(dict(
        agent_name='ifql',  # registry name (agents/__init__.py)
        lr=3e-4,  # Adam learning rate for all networks; constant, no clipping
        batch_size=256,  # transitions per update (read by the training loop)
        actor_hidden_dims=(512, 512, 512, 512),  # hidden sizes of the BC flow v_θ
        value_hidden_dims=(512, 512, 512, 512),  # hidden sizes of V and of each critic member
        layer_norm=True,  # LayerNorm after every hidden activation of V and the critic
        actor_layer_norm=False,  # LayerNorm in v_θ (FQL: off)
        discount=0.99,  # γ of the critic target (0.995 for long-horizon tasks, see configs.py)
        tau=0.005,  # Polyak rate of the target critic
        expectile=0.9,  # τ of the expectile value loss
        num_samples=32,  # N flow samples per state when acting; the agent takes the one with the highest Q
        evaluation_temperature=1.0,  # evaluation samples the flow's noise at full scale, as FQL's IFQL does
        flow_steps=10,  # Euler steps of the BC flow when acting
        normalize_observations=False,  # z-score observations with the training set's statistics (FQL: off)
        observation_mean=None,  # per-dimension mean; None: the training loop fills in the training set's
        observation_std=None,  # per-dimension std (dimensions with std < 1e-6: 1); None: filled likewise
        encoder=ml_collections.config_dict.placeholder(str),  # pixel encoder (networks/encoders.py); None: states
        frame_stack=1,  # frames per observation on visual tasks (read by the data and the envs; FQL: 3)
        p_aug=0.0,  # probability of FQL's random-shift augmentation of a visual batch (read by the data; FQL: 0.5)
    ))
