"""Implicit Q-learning (IQL; Kostrikov, Nair & Levine 2022) as FQL's repository runs it: an expectile value,
twin Q, and an advantage-weighted-regression (AWR) Gaussian actor. Defaults are FQL's `agents/iql.py`.

Networks, one parameter tree, one Adam step on the sum of the three losses:
  V_ψ(s)        `value`   4×512 GELU MLP with LayerNorm;
  Q_φ,m(s, a)   `critic`  2-member ensemble, 4×512 GELU MLP with LayerNorm;
  π_θ(a | s)    `actor`   diagonal Gaussian N(μ_θ(s), σ²), 4×512 GELU MLP without LayerNorm; σ = 1 by default.
The target critic Q_φ̄ (`target_critic_params`) is outside the optimiser and follows φ by Polyak averaging.

Gradient convention (as in FQL): a network sees gradients only where a loss passes `params=grad_params`;
every other call uses the current parameters as constants.

Visual tasks (`encoder` = 'impala_small', networks/encoders.py): as in FQL, V, Q and π each have their own encoder
inside their module, trained by their own losses; the target critic holds a Polyak-averaged copy of the critic's.

IQL's losses use no random draws, so `total_loss` ignores its `rng` (kept for the common agent interface).
The value learning (`ExpectileValueLearning`) is shared with IFQL (agents/ifql.py).
"""

from typing import Any

import flax
import jax
import jax.numpy as jnp
import ml_collections
import optax

from agents.train_state import (TrainState, freeze_config, nonpytree_field, normalize_batch, normalize_observations,
                                polyak_update)
from networks.encoders import make_encoder
from networks.gaussian import GaussianActor, diagonal_gaussian_log_prob
from networks.mlp import MLP, CriticEnsemble
from networks.module_dict import ModuleDict

Batch = dict[str, jax.Array]
Info = dict[str, jax.Array]


def expectile_loss(differences: jax.Array, expectile: float) -> jax.Array:
    """Asymmetric squared loss L_τ(u) = |τ − 1(u < 0)| · u², elementwise (u = Q − V, any shape).

    τ > 0.5 weighs under-estimates (u > 0) more, so V approaches an upper expectile of Q over the data's actions.
    """
    weights = jnp.where(differences >= 0, expectile, 1.0 - expectile)
    return weights * differences ** 2


def awr_weights(advantages: jax.Array, alpha: float, max_weight: float) -> jax.Array:
    """w = min(exp(α · A), w_max), elementwise: the AWR weights, clipped above as in FQL (w_max = 100)."""
    return jnp.minimum(jnp.exp(alpha * advantages), max_weight)


class ExpectileValueLearning:
    """IQL's value learning, for agents with a `value` MLP, a 2-member `critic` and `target_critic_params`."""

    def value(self, observations: jax.Array, params: Any = None) -> jax.Array:
        """V_ψ(s): (..., obs_dim) (frames (..., H, W, C) with an `encoder`) -> (...)."""
        return self.network.select('value')(observations, params=params)[..., 0]

    def value_loss(self, batch: Batch, grad_params: Any) -> tuple[jax.Array, Info]:
        """L_V = mean_b L_τ(min_m Q_φ̄,m(s, a) − V_ψ(s)), τ = `expectile`; Q from the target critic, (B,)."""
        target_q = self.network.select('critic')(batch['observations'], batch['actions'],
                                                 params={'modules_critic': self.target_critic_params}).min(axis=0)
        v = self.value(batch['observations'], params=grad_params)
        loss = expectile_loss(target_q - v, self.config['expectile']).mean()
        return loss, {'loss': loss, 'v_mean': v.mean(), 'v_max': v.max(), 'v_min': v.min()}

    def critic_loss(self, batch: Batch, grad_params: Any) -> tuple[jax.Array, Info]:
        """Both members regress onto y = r + γ · mask · V_ψ(s') (current V, held fixed), (B,):
        L_Q = mean_b Σ_m (Q_φ,m(s, a) − y)²  (a sum over the 2 members, as in FQL's IQL)."""
        target_q = batch['rewards'] + self.config['discount'] * batch['masks'] * self.value(
            batch['next_observations'])
        target_q = jax.lax.stop_gradient(target_q)
        q = self.network.select('critic')(batch['observations'], batch['actions'], params=grad_params)  # (2, B)
        loss = ((q - target_q) ** 2).sum(axis=0).mean()
        return loss, {'loss': loss, 'q_mean': q.mean(), 'q_max': q.max(), 'q_min': q.min(),
                      'target_q_mean': target_q.mean()}

    def next_target_critic_params(self) -> Any:
        """φ̄ ← τ φ + (1 − τ) φ̄ with this (pre-step) agent's φ: a one-step lag, as in FQL."""
        return polyak_update(self.network.params['modules_critic'], self.target_critic_params, self.config['tau'])


def create_with_actor(cls: type, rng: jax.Array, example_batch: Batch, config: Any,
                      actor_modules: dict[str, tuple[Any, tuple[jax.Array, ...]]]) -> Any:
    """An IQL-style agent `cls` (IQL, IFQL) with fresh networks: the `value` and `critic` modules (LayerNorm by
    `layer_norm`; each with its own `encoder`, if any) and the actor's modules, `actor_modules` = {name: (module,
    example inputs)}, initialised from `rng` on `example_batch`; one Adam (`lr`) for all, and the target critic a copy
    of the critic. Pure."""
    observations, actions = example_batch['observations'], example_batch['actions']
    network_def = ModuleDict({
        'value': MLP((*config['value_hidden_dims'], 1), layer_norm=config['layer_norm'],
                     encoder=make_encoder(config['encoder'])),
        'critic': CriticEnsemble(config['value_hidden_dims'], layer_norm=config['layer_norm'], num_members=2,
                                 encoder=make_encoder(config['encoder'])),
        **{name: module for name, (module, _) in actor_modules.items()},
    })
    rng, init_rng = jax.random.split(rng)
    params = network_def.init(init_rng, value=(observations,), critic=(observations, actions),
                              **{name: inputs for name, (_, inputs) in actor_modules.items()})['params']
    network = TrainState.create(network_def, params, optax.adam(learning_rate=config['lr']))
    target_critic_params = jax.tree_util.tree_map(jnp.copy, params['modules_critic'])
    return cls(rng=rng, network=network, target_critic_params=target_critic_params, config=config)


class IQLAgent(ExpectileValueLearning, flax.struct.PyTreeNode):
    """IQL agent state: rng, networks + Adam state, target critic params, and the (static) config."""

    rng: jax.Array
    network: TrainState
    target_critic_params: Any
    config: Any = nonpytree_field()

    def actor_loss(self, batch: Batch, grad_params: Any) -> tuple[jax.Array, Info]:
        """AWR: L_π = −mean_b w_b · log π_θ(a_b | s_b), with the weights held fixed:

        A = min_m Q_φ,m(s, a) − V_ψ(s)  (current networks, (B,)),  w = min(exp(α · A), w_max),
        α = `alpha` (inverse temperature), w_max = `max_awr_weight`. Also reported: `mse` = mean (μ_θ(s) − a)².
        """
        observations, actions = batch['observations'], batch['actions']
        advantages = self.network.select('critic')(observations, actions).min(axis=0) - self.value(observations)
        weights = jax.lax.stop_gradient(awr_weights(advantages, self.config['alpha'], self.config['max_awr_weight']))
        means, log_stds = self.network.select('actor')(observations, params=grad_params)
        log_prob = diagonal_gaussian_log_prob(actions, means, log_stds)
        loss = -(weights * log_prob).mean()
        return loss, {'loss': loss, 'adv': advantages.mean(), 'weight_mean': weights.mean(),
                      'weight_max': weights.max(), 'bc_log_prob': log_prob.mean(),
                      'mse': jnp.mean((means - actions) ** 2), 'std': jnp.exp(log_stds).mean()}

    def total_loss(self, batch: Batch, grad_params: Any, rng: jax.Array) -> tuple[jax.Array, Info]:
        """L_V + L_Q + L_π; info keys are `value/…`, `critic/…` and `actor/…`. `rng` is unused (no random
        draws). `batch` holds raw observations; they are z-scored here (if `normalize_observations`)."""
        del rng
        batch = normalize_batch(self.config, batch)
        losses, info = [], {}
        for name, loss_fn in (('value', self.value_loss), ('critic', self.critic_loss), ('actor', self.actor_loss)):
            loss, loss_info = loss_fn(batch, grad_params)
            losses.append(loss)
            info.update({f'{name}/{k}': v for k, v in loss_info.items()})
        return sum(losses), info

    # ------------------------------------------------------------------------------ public interface
    def validation_metrics(self, batch: Batch, rng: jax.Array) -> Info:
        """`total_loss`'s info on a validation batch, with the current parameters and no update."""
        return self.total_loss(batch, self.network.params, rng)[1]

    @jax.jit
    def update(self, batch: Batch) -> tuple['IQLAgent', Info]:
        """One Adam step on `total_loss`, then the Polyak target update; pure (scan/vmap safe)."""
        new_rng, loss_rng = jax.random.split(self.rng)
        new_network, info = self.network.apply_loss_fn(lambda p: self.total_loss(batch, p, loss_rng))
        return self.replace(rng=new_rng, network=new_network,
                            target_critic_params=self.next_target_critic_params()), info

    @jax.jit
    def sample_actions(self, observations: jax.Array, rng: jax.Array, temperature: float = 1.0) -> jax.Array:
        """a = clip(μ_θ(s) + temperature · σ · ε, −1, 1), ε ~ N(0, I): (..., obs_dim) (frames (..., H, W, C) with an
        `encoder`) -> (..., action_dim).

        Temperature 0 gives the mean action μ_θ(s), which is how FQL evaluates IQL; 1 samples the trained
        Gaussian (FQL's online exploration).
        """
        means, log_stds = self.network.select('actor')(normalize_observations(self.config, observations))
        noise = jax.random.normal(rng, means.shape, means.dtype)
        return jnp.clip(means + temperature * jnp.exp(log_stds) * noise, -1.0, 1.0)

    @classmethod
    def create(cls, rng: jax.Array, example_batch: Batch, config: ml_collections.ConfigDict) -> 'IQLAgent':
        """Initialise all networks from `rng`; pure, so `jax.vmap` over `rng` builds several seeds at once.

        `example_batch` fixes the shapes: observations (B, obs_dim) (frames (B, H, W, C) with an `encoder`),
        actions (B, action_dim).
        """
        config = freeze_config(config, get_config(), example_batch, rules=CONFIG_RULES)
        actor = GaussianActor(config['actor_hidden_dims'], config['action_dim'], layer_norm=config['actor_layer_norm'],
                              const_std=config['const_std'], final_init_scale=config['actor_fc_scale'],
                              encoder=make_encoder(config['encoder']))
        return create_with_actor(cls, rng, example_batch, config, {'actor': (actor, (example_batch['observations'],))})


AGENT_CLASS = IQLAgent  # the class the training loop builds (agents/__init__.py)
DISPLAY_NAME = 'IQL'  # how results tables name the agent (its paper's name)


CONFIG_RULES = {  # what each get_config key may be (agents/config_rules.py); checked before any compute
    'lr': '> 0', 'batch_size': 'int > 0', 'actor_hidden_dims': 'ints > 0', 'value_hidden_dims': 'ints > 0',
    'layer_norm': 'bool', 'actor_layer_norm': 'bool', 'discount': '(0, 1]', 'tau': '(0, 1]',
    'expectile': '(0, 1)', 'alpha': '>= 0', 'max_awr_weight': '> 0', 'evaluation_temperature': '>= 0',
    'const_std': 'bool', 'actor_fc_scale': '> 0', 'normalize_observations': 'bool',
    'encoder': (None, 'impala', 'impala_small', 'impala_debug'), 'frame_stack': 'int > 0', 'p_aug': '[0, 1]',
}


def get_config() -> ml_collections.ConfigDict:
    """IQL defaults (FQL's `agents/iql.py`, AWR actor); per-task values (alpha, discount) come from configs.py."""
    return ml_collections.ConfigDict(dict(
        agent_name='iql',  # registry name (agents/__init__.py)
        lr=3e-4,  # Adam learning rate for all networks; constant, no clipping
        batch_size=256,  # transitions per update (read by the training loop)
        actor_hidden_dims=(512, 512, 512, 512),  # hidden sizes of the Gaussian actor's mean network
        value_hidden_dims=(512, 512, 512, 512),  # hidden sizes of V and of each critic member
        layer_norm=True,  # LayerNorm after every hidden activation of V and the critic
        actor_layer_norm=False,  # LayerNorm in the actor (FQL: off)
        discount=0.99,  # γ of the critic target (0.995 for long-horizon tasks, see configs.py)
        tau=0.005,  # Polyak rate of the target critic
        expectile=0.9,  # τ of the expectile value loss
        alpha=10.0,  # AWR inverse temperature α in exp(α · A); tuned per environment
        max_awr_weight=100.0,  # upper clip of the AWR weights exp(α · A)
        evaluation_temperature=0.0,  # evaluation acts with the mean action μ_θ(s), as FQL evaluates IQL
        const_std=True,  # actor σ fixed at 1; False learns a state-independent log σ (clipped to [−5, 2])
        actor_fc_scale=0.01,  # variance-scaling factor of the actor's output layer initialisation
        normalize_observations=False,  # z-score observations with the training set's statistics (FQL: off)
        observation_mean=None,  # per-dimension mean; None: the training loop fills in the training set's
        observation_std=None,  # per-dimension std (dimensions with std < 1e-6: 1); None: filled likewise
        encoder=ml_collections.config_dict.placeholder(str),  # pixel encoder (networks/encoders.py); None: states
        frame_stack=1,  # frames per observation on visual tasks (read by the data and the envs; FQL: 3)
        p_aug=0.0,  # probability of FQL's random-shift augmentation of a visual batch (read by the data; FQL: 0.5)
    ))
