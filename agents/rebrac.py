"""Revisited behaviour-regularised actor-critic (ReBRAC; Tarasov et al. 2023) as FQL's repository runs it:
TD3+BC with a LayerNorm critic and separate BC penalties on the actor (α_actor) and in the critic target
(α_critic). Defaults are FQL's `agents/rebrac.py`.

Networks, one parameter tree, one gradient of the summed losses per update:
  π_θ(s)        `actor`   deterministic tanh actor, 4×512 GELU MLP without LayerNorm, output layer initialised
                          at variance-scaling 0.01;
  Q_φ,m(s, a)   `critic`  2-member ensemble, 4×512 GELU MLP with LayerNorm.
The target actor π_θ̄ and target critic Q_φ̄ (`target_actor_params`, `target_critic_params`) are outside the
optimiser.

Delayed actor updates, as in FQL's code. Updates are numbered i = 1, 2, … (`network.step` + 1); the actor's loss
enters the gradient only when i is a multiple of `actor_freq`, which is also when both targets move (from the
pre-step parameters). One Adam covers all parameters, so on the other updates the actor's gradient is zero but
Adam's momentum still moves it (unlike TD3, which holds the actor still). This matters: while the critic is
flat in the action the actor is a BC fit, and holding it still on critic-only updates halves its progress.

Critic penalty. With α_critic > 0 the Bellman target penalises the distance of the target policy's action at
s' to the dataset's next action, so batches must carry `next_actions` (B, action_dim), which the config's
`next_actions` key asks the training loop for (`datasets.buffer.next_action_indices`: the next action within the
episode; FQL takes the next row's action, the next episode's first action at an episode's end). With α_critic = 0
(the default) the losses never read them.

Visual tasks (`encoder` = 'impala_small', networks/encoders.py): as in FQL, the actor and the critic each have their
own encoder inside their module, trained by their own losses, and the targets hold Polyak-averaged copies of them.

Gradient convention (as in FQL): a network sees gradients only where a loss passes `params=grad_params`.
"""

import functools
from typing import Any, NamedTuple

import flax
import jax
import jax.numpy as jnp
import ml_collections
import optax

from agents.train_state import (TrainState, freeze_config, nonpytree_field, normalize_batch, normalize_observations,
                                polyak_update)
from networks.encoders import make_encoder
from networks.mlp import MLP, CriticEnsemble
from networks.module_dict import ModuleDict

Batch = dict[str, jax.Array]
Info = dict[str, jax.Array]


class LossNoise(NamedTuple):
    """All randomness of one loss evaluation, drawn up front so each loss is a deterministic function."""

    target_noise: jax.Array  # ε (B, action_dim) ~ N(0, I): target-policy smoothing, scaled and clipped in L_Q


def draw_loss_noise(rng: jax.Array, batch_size: int, action_dim: int) -> LossNoise:
    """A standard-normal ε per transition and action dimension."""
    return LossNoise(target_noise=jax.random.normal(rng, (batch_size, action_dim)))


def squared_distance(actions: jax.Array, reference: jax.Array) -> jax.Array:
    """‖a − a_ref‖² = Σ_j (a_j − a_ref,j)²: (..., A), (..., A) -> (...). ReBRAC's BC distance (summed over
    action dimensions, as in FQL)."""
    return jnp.sum((actions - reference) ** 2, axis=-1)


def is_actor_update(step: jax.Array, actor_freq: int) -> jax.Array:
    """True when update number i = step + 1 (steps done before it: `step`) is a multiple of `actor_freq`."""
    return (step + 1) % actor_freq == 0


class ReBRACAgent(flax.struct.PyTreeNode):
    """ReBRAC agent state: rng, networks + Adam states, target actor and critic params, and the (static) config."""

    rng: jax.Array
    network: TrainState
    target_actor_params: Any
    target_critic_params: Any
    config: Any = nonpytree_field()

    def actor_actions(self, observations: jax.Array, params: Any = None) -> jax.Array:
        """π_θ(s) = tanh(MLP(s)): (..., obs_dim) (frames (..., H, W, C) with an `encoder`) -> (..., action_dim) in
        (−1, 1)."""
        return jnp.tanh(self.network.select('actor')(observations, params=params))

    def critic_loss(self, batch: Batch, grad_params: Any, target_noise: jax.Array) -> tuple[jax.Array, Info]:
        """TD regression onto one target with target-policy smoothing and the critic penalty, (B,):

        a' = clip(π_θ̄(s') + clip(σ ε, −c, c), −1, 1),   σ = `actor_noise`, c = `actor_noise_clip`;
        y  = r + γ · mask · (min_m Q_φ̄,m(s', a') − α_critic ‖a' − a'_data‖²),   a'_data = batch['next_actions'];
        L  = mean_{m, b} (Q_φ,m(s, a) − y)²  over the (2, B) ensemble output.
        """
        noise = jnp.clip(self.config['actor_noise'] * target_noise, -self.config['actor_noise_clip'],
                         self.config['actor_noise_clip'])
        next_actions = self.network.select('actor')(batch['next_observations'],
                                                    params={'modules_actor': self.target_actor_params})
        next_actions = jnp.clip(jnp.tanh(next_actions) + noise, -1.0, 1.0)
        next_q = self.network.select('critic')(batch['next_observations'], next_actions,
                                               params={'modules_critic': self.target_critic_params}).min(axis=0)
        info = {}
        if self.config['alpha_critic'] != 0:  # static: without the penalty, batches need no next_actions
            penalty = squared_distance(next_actions, batch['next_actions'])
            next_q = next_q - self.config['alpha_critic'] * penalty
            info['penalty'] = penalty.mean()
        target_q = jax.lax.stop_gradient(batch['rewards'] + self.config['discount'] * batch['masks'] * next_q)
        q = self.network.select('critic')(batch['observations'], batch['actions'], params=grad_params)  # (2, B)
        loss = jnp.mean((q - target_q) ** 2)
        return loss, {'loss': loss, 'q_mean': q.mean(), 'q_max': q.max(), 'q_min': q.min(),
                      'target_q_mean': target_q.mean(), **info}

    def actor_loss(self, batch: Batch, grad_params: Any) -> tuple[jax.Array, Info]:
        """L_π = −mean_b λ · min_m Q_φ,m(s, π_θ(s)) + α_actor · mean_b ‖π_θ(s) − a‖²,  λ = sg(1 / mean_b |min_m Q|).

        The critic is held fixed; λ makes the Q term scale-free, so α_actor sets the BC strength directly.
        """
        actions = self.actor_actions(batch['observations'], params=grad_params)
        q = self.network.select('critic')(batch['observations'], actions).min(axis=0)  # (B,)
        q_loss = -(jax.lax.stop_gradient(1.0 / jnp.abs(q).mean()) * q).mean()
        distance = squared_distance(actions, batch['actions'])
        bc_loss = self.config['alpha_actor'] * distance.mean()
        loss = q_loss + bc_loss
        return loss, {'loss': loss, 'q_loss': q_loss, 'bc_loss': bc_loss, 'q': q.mean(), 'mse': distance.mean()}

    def total_loss(self, batch: Batch, grad_params: Any, rng: jax.Array,
                   actor_update: jax.Array = True) -> tuple[jax.Array, Info]:
        """L_Q + 1[actor_update] · L_π with the target-policy noise drawn from `rng`; info keys are `critic/…` and
        `actor/…` (the actor's are reported on every update). `batch` holds raw observations; they are z-scored
        here (if `normalize_observations`)."""
        batch = normalize_batch(self.config, batch)
        noise = draw_loss_noise(rng, *batch['actions'].shape)
        critic_loss, critic_info = self.critic_loss(batch, grad_params, noise.target_noise)
        actor_loss, actor_info = self.actor_loss(batch, grad_params)
        info = {f'critic/{k}': v for k, v in critic_info.items()}
        info.update({f'actor/{k}': v for k, v in actor_info.items()})
        return critic_loss + jnp.where(actor_update, actor_loss, 0.0), info

    # ------------------------------------------------------------------------------ public interface
    def validation_metrics(self, batch: Batch, rng: jax.Array) -> Info:
        """`total_loss`'s info on a validation batch, with the current parameters and no update."""
        return self.total_loss(batch, self.network.params, rng)[1]

    @jax.jit
    def update(self, batch: Batch) -> tuple['ReBRACAgent', Info]:
        """One Adam step on `total_loss` (the actor's loss included only on actor updates); on actor updates also
        the Polyak updates of both targets (from the pre-step parameters). Pure (scan/vmap safe)."""
        new_rng, loss_rng = jax.random.split(self.rng)
        actor_update = is_actor_update(self.network.step, self.config['actor_freq'])
        new_network, info = self.network.apply_loss_fn(lambda p: self.total_loss(batch, p, loss_rng, actor_update))

        def unless_actor_update(new: Any, old: Any) -> Any:
            return jax.tree_util.tree_map(lambda n, o: jnp.where(actor_update, n, o), new, old)

        old_params = self.network.params
        tau = self.config['tau']
        target_actor = unless_actor_update(polyak_update(old_params['modules_actor'], self.target_actor_params, tau),
                                           self.target_actor_params)
        target_critic = unless_actor_update(
            polyak_update(old_params['modules_critic'], self.target_critic_params, tau), self.target_critic_params)
        info['actor/updated'] = actor_update.astype(jnp.float32)
        return self.replace(rng=new_rng, network=new_network, target_actor_params=target_actor,
                            target_critic_params=target_critic), info

    @jax.jit
    def sample_actions(self, observations: jax.Array, rng: jax.Array, temperature: float = 1.0) -> jax.Array:
        """a = clip(π_θ(s) + clip(temperature · σ · ε, −c, c), −1, 1), ε ~ N(0, I): (..., obs_dim) (frames
        (..., H, W, C) with an `encoder`) -> (..., action_dim).

        Temperature 0 gives π_θ(s), which is how FQL evaluates ReBRAC; 1 adds the exploration noise of FQL's
        online phase.
        """
        actions = self.actor_actions(normalize_observations(self.config, observations))
        noise = temperature * self.config['actor_noise'] * jax.random.normal(rng, actions.shape, actions.dtype)
        noise = jnp.clip(noise, -self.config['actor_noise_clip'], self.config['actor_noise_clip'])
        return jnp.clip(actions + noise, -1.0, 1.0)

    @classmethod
    def create(cls, rng: jax.Array, example_batch: Batch, config: ml_collections.ConfigDict) -> 'ReBRACAgent':
        """Initialise all networks from `rng`; pure, so `jax.vmap` over `rng` builds several seeds at once.

        `example_batch` fixes the shapes: observations (B, obs_dim) (frames (B, H, W, C) with an `encoder`), actions
        (B, action_dim); it must hold
        `next_actions` when α_critic ≠ 0.
        """
        config = freeze_config(config, get_config(), example_batch, rules=CONFIG_RULES)
        if config['alpha_critic'] != 0 and 'next_actions' not in example_batch:
            raise ValueError(f"ReBRAC with alpha_critic={config['alpha_critic']} needs batches with next_actions (the "
                             "dataset's next action), which these batches lack; keep next_actions=True (the training loop then adds them) or set "
                             "alpha_critic=0")
        observations, actions = example_batch['observations'], example_batch['actions']
        final_init = flax.linen.initializers.variance_scaling(config['actor_fc_scale'], 'fan_avg', 'uniform')
        network_def = ModuleDict({
            'actor': MLP((*config['actor_hidden_dims'], config['action_dim']), layer_norm=config['actor_layer_norm'],
                         final_kernel_init=final_init, encoder=make_encoder(config['encoder'])),
            'critic': CriticEnsemble(config['value_hidden_dims'], layer_norm=config['layer_norm'], num_members=2,
                                     encoder=make_encoder(config['encoder'])),
        })
        rng, init_rng = jax.random.split(rng)
        params = network_def.init(init_rng, actor=(observations,), critic=(observations, actions))['params']
        network = TrainState.create(network_def, params, optax.adam(learning_rate=config['lr']))
        copy = functools.partial(jax.tree_util.tree_map, jnp.copy)
        return cls(rng=rng, network=network, target_actor_params=copy(params['modules_actor']),
                   target_critic_params=copy(params['modules_critic']), config=config)


AGENT_CLASS = ReBRACAgent  # the class the training loop builds (agents/__init__.py)
DISPLAY_NAME = 'ReBRAC'  # how results tables name the agent (its paper's name)


CONFIG_RULES = {  # what each get_config key may be (agents/config_rules.py); checked before any compute
    'lr': '> 0', 'batch_size': 'int > 0', 'actor_hidden_dims': 'ints > 0', 'value_hidden_dims': 'ints > 0',
    'layer_norm': 'bool', 'actor_layer_norm': 'bool', 'discount': '(0, 1]', 'tau': '(0, 1]',
    'actor_fc_scale': '> 0', 'alpha_actor': '>= 0', 'alpha_critic': '>= 0', 'next_actions': 'bool',
    'actor_freq': 'int > 0', 'actor_noise': '>= 0', 'actor_noise_clip': '>= 0', 'evaluation_temperature': '>= 0',
    'normalize_observations': 'bool', 'encoder': (None, 'impala', 'impala_small', 'impala_debug'),
    'frame_stack': 'int > 0', 'p_aug': '[0, 1]',
}


def get_config() -> ml_collections.ConfigDict:
    """ReBRAC defaults (FQL's `agents/rebrac.py`); per-task values (alpha_actor, alpha_critic, discount) come from
    configs.py."""
    return ml_collections.ConfigDict(dict(
        agent_name='rebrac',  # registry name (agents/__init__.py)
        lr=3e-4,  # learning rate of the one Adam over actor and critic; constant, no clipping
        batch_size=256,  # transitions per update (read by the training loop)
        actor_hidden_dims=(512, 512, 512, 512),  # hidden sizes of the actor
        value_hidden_dims=(512, 512, 512, 512),  # hidden sizes of each critic member
        layer_norm=True,  # LayerNorm after every hidden activation of the critic
        actor_layer_norm=False,  # LayerNorm in the actor (FQL: off)
        discount=0.99,  # γ of the Bellman target (0.995 for long-horizon tasks, see configs.py)
        tau=0.005,  # Polyak rate of both targets (applied on actor updates only)
        actor_fc_scale=0.01,  # variance-scaling factor of the actor's output layer initialisation
        alpha_actor=0.0,  # weight of the actor's BC term ‖π(s) − a‖²; tuned per environment
        alpha_critic=0.0,  # weight of the penalty ‖a' − a'_data‖² in the critic target; > 0 needs next_actions
        next_actions=True,  # batches carry next_actions, the dataset's next action in the episode (a'_data above)
        actor_freq=2,  # the actor and both targets are updated every actor_freq-th update
        actor_noise=0.2,  # σ of the target-policy smoothing noise (also the exploration noise at temperature 1)
        actor_noise_clip=0.5,  # c: that noise is clipped to [−c, c]
        evaluation_temperature=0.0,  # evaluation acts with π_θ(s), no exploration noise, as FQL evaluates ReBRAC
        normalize_observations=False,  # z-score observations with the training set's statistics (FQL: off)
        observation_mean=None,  # per-dimension mean; None: the training loop fills in the training set's
        observation_std=None,  # per-dimension std (dimensions with std < 1e-6: 1); None: filled likewise
        encoder=ml_collections.config_dict.placeholder(str),  # pixel encoder (networks/encoders.py); None: states
        frame_stack=1,  # frames per observation on visual tasks (read by the data and the envs; FQL: 3)
        p_aug=0.0,  # probability of FQL's random-shift augmentation of a visual batch (read by the data; FQL: 0.5)
    ))
