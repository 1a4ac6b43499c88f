"""MeanFlowQL (arXiv 2511.13035): one-step residual MeanFlow policy + twin-Q critic, trained jointly.

Per update (one joint gradient over critic and actor params):
    L = L_critic + L_actor + α · L_MFI
L_critic regresses both Q members on r + γ·mask·agg_m Q̄_m(s', a') with a' the best of N one-step samples
scored by the target critic; L_actor = -mean Q(s, clip(g_θ(s, e, 1))) + bound loss; L_MFI is the
MeanFlow-identity loss of the residual policy g_θ(s, a_t, t) = a_t − u(a_t, 0, t), so g_θ(s, e, 1) is the action.

Gradient convention (as in FQL): a loss gets gradients only through the `params=grad_params` it passes;
calls without `params=` use the current parameters as constants.

Randomness is drawn in one place, `draw_loss_noise` (t and e of L_MFI, the actor's e, the Bellman target's
candidate noises); the losses are deterministic functions of (batch, params, draws).

Where this agent deliberately differs from the authors' code (HiccupRL/MeanFlowQL), and why: see
docs/reproducing.md, "Deliberate differences from the authors' code". Its update equals theirs at float32
precision on the covered states; tests/test_reference.py checks it against values computed by their code.

State: the target critic is its own pytree field outside the optimiser, changed only by Polyak averaging with
the post-step critic (as the authors do; FQL uses the pre-step critic). α, the MFI-loss window and the update
counter are pytree fields too, so `update` is pure.
Visual tasks (`encoder` = 'impala_small', networks/encoders.py): as in FQL, the critic and the actor each have
their own encoder, trained by their own losses. The critic's sits inside the critic module (the target critic
has its own Polyak-averaged copy); the actor's (`actor_encoder`) is applied once per batch and its features
replace the state as the policy's input.
Step counting: `step` = completed updates; the update being computed has index i = step + 1 (the training
loop runs updates 1..N). The authors' 0-based loop index at their k-th update is k − 1, so α checks fire at the
same labelled steps (i % K == 0), one update apart.
"""

from typing import Any, Callable, NamedTuple

import flax
import jax
import jax.numpy as jnp
import ml_collections
import optax

from agents.train_state import (TrainState, freeze_config, nonpytree_field, normalize_batch,
                                normalize_observations, polyak_update)
from networks.encoders import make_encoder
from networks.mlp import CriticEnsemble
from networks.module_dict import ModuleDict
from networks.policy import DiTPolicy, MLPPolicy

Array = jax.Array
PolicyFn = Callable[[Array, Array], Array]  # g(a_t (B, d), t (B, 1)) -> (B, d), observations closed over


# ---------------------------------------------------------------------------------------------------------
# MeanFlow maths as pure functions of a callable g (shared with benchmarks/toy_multimodal.py).

def sample_times(rng: Array, batch_size: int, time_steps: int, dtype: Any = jnp.float32) -> Array:
    """t of shape (B, 1): k/T with k ~ U{1..T} if T ≤ 1000, else t ~ U(0, 1) (the authors' rule)."""
    if time_steps <= 1000:
        k = jax.random.randint(rng, (batch_size, 1), 1, time_steps + 1)
        return k.astype(dtype) / time_steps
    return jax.random.uniform(rng, (batch_size, 1), dtype)


def mean_flow_target(g_fn: PolicyFn, noisy_actions: Array, times: Array, velocities: Array,
                     target_clip: float) -> tuple[Array, Array]:
    """g and its MeanFlow-identity regression target, from one forward-mode pass.

    With a_t = (1−t)a + t e and v = e − a = da_t/dt, the MeanFlow identity u = v − t du/dt for
    u = a_t − g gives
        (g, ġ) = jvp(g, (a_t, t), (v, 1)),   ġ = ∂_a g · v + ∂_t g = d/dt g(a_t, t) along the path,
        g_tgt = clip(stop_gradient(a_t − (1−t) v − t ġ), −target_clip, target_clip).
    Shapes: noisy_actions, velocities (B, d); times (B, 1). Returns (g, g_tgt), both (B, d); g carries
    the gradient of whatever parameters g_fn closes over.
    """
    g, g_dot = jax.jvp(g_fn, (noisy_actions, times), (velocities, jnp.ones_like(times)))
    target = noisy_actions - (1.0 - times) * velocities - times * g_dot
    return g, jnp.clip(jax.lax.stop_gradient(target), -target_clip, target_clip)


def adaptive_l2_loss(prediction: Array, target: Array, gamma: float, c: float) -> tuple[Array, Array]:
    """MeanFlow's adaptive L2: δ²_i = mean_j (pred − tgt)²_ij (floored at 1e-12),
    w_i = clip(1 / max((δ²_i + c)^(1−γ), 1e-12), 1e-6, 1e6),  L = mean_i stop_gradient(w_i) δ²_i.

    prediction, target: (B, d). Returns (L, mean_i δ²_i) — the second is the plain MSE, for logging.
    """
    squared_error = jnp.maximum(jnp.mean(jnp.square(prediction - target), axis=-1), 1e-12)
    weights = jnp.clip(1.0 / jnp.maximum((squared_error + c) ** (1.0 - gamma), 1e-12), 1e-6, 1e6)
    return jnp.mean(jax.lax.stop_gradient(weights) * squared_error), jnp.mean(squared_error)


def draw_mfi_inputs(rng: Array, batch_size: int, action_dim: int, time_steps: int,
                    dtype: Any = jnp.float32) -> tuple[Array, Array]:
    """The draws of one L_MFI evaluation: t (B, 1) from `sample_times` and e (B, d) ~ N(0, I)."""
    time_rng, noise_rng = jax.random.split(rng)
    return (sample_times(time_rng, batch_size, time_steps, dtype),
            jax.random.normal(noise_rng, (batch_size, action_dim), dtype))


def mfi_loss_from_draws(g_fn: PolicyFn, actions: Array, times: Array, noises: Array, *, target_clip: float,
                        adaptive_gamma: float, adaptive_c: float) -> tuple[Array, dict[str, Array]]:
    """L_MFI for data actions a (B, d), times t (B, 1) and noises e (B, d): a_t = (1−t)a + t e, v = e − a,
    then `adaptive_l2_loss(g(a_t, t), mean_flow_target(...))`. Returns (loss, {'mfi_loss', 'mfi_mse'})."""
    noisy_actions = (1.0 - times) * actions + times * noises
    g, target = mean_flow_target(g_fn, noisy_actions, times, noises - actions, target_clip)
    loss, mse = adaptive_l2_loss(g, target, adaptive_gamma, adaptive_c)
    return loss, {'mfi_loss': loss, 'mfi_mse': mse}


class LossNoise(NamedTuple):
    """All randomness of one MFQL loss evaluation, drawn up front (`draw_loss_noise`) so the losses are
    deterministic functions of (batch, params, draws)."""

    target_candidate_noise: Array  # (N_target, B, d): candidate noises of the Bellman target's best-of-N
    actor_noise: Array  # e (B, d) of the actor loss: â = g_θ(s, e, 1)
    mfi_times: Array  # t (B, 1) of L_MFI (`sample_times`)
    mfi_noise: Array  # e (B, d) ~ N(0, I) of L_MFI


def draw_loss_noise(rng: Array, batch_size: int, action_dim: int, config: Any) -> LossNoise:
    """Independent draws for one batch: N(0, I) noises, and the MFI times by the `time_steps` rule."""
    critic_rng, actor_rng, mfi_rng = jax.random.split(rng, 3)
    mfi_times, mfi_noise = draw_mfi_inputs(mfi_rng, batch_size, action_dim, config['time_steps'])
    return LossNoise(
        target_candidate_noise=jax.random.normal(
            critic_rng, (config['num_candidates_target'], batch_size, action_dim)),
        actor_noise=jax.random.normal(actor_rng, (batch_size, action_dim)),
        mfi_times=mfi_times, mfi_noise=mfi_noise)


# ---------------------------------------------------------------------------------------------------------
# Adaptive α (the authors' rule, with the loss-window mask fixed).

def adaptive_alpha(alpha: Array, loss_window: Array, window_count: Array, step: Array, mfi_loss: Array,
                   config: Any) -> Array:
    """α used by update number `step` (1-based). On check steps (step % K == 0 and step ≥ warm-up):
    with H̄ the mean of the `window_count` filled slots (need ≥ 2), α ← min(α·inc, max_ratio·α₀) if
    L_MFI > thr·H̄, α ← max(α·dec, min_ratio·α₀) if L_MFI < H̄/thr; otherwise (and on other steps) α is kept.
    The window holds the newest value last (`push_loss_window`), so the filled slots are the last `count`."""
    window_size = loss_window.shape[0]
    filled = jnp.arange(window_size) >= window_size - window_count
    history_mean = jnp.sum(jnp.where(filled, loss_window, 0.0)) / jnp.maximum(window_count, 1)
    enough = window_count >= 2
    alpha0, threshold = config['alpha'], config['alpha_threshold']
    increased = jnp.minimum(alpha * config['alpha_increase'], config['alpha_max_ratio'] * alpha0)
    decreased = jnp.maximum(alpha * config['alpha_decrease'], config['alpha_min_ratio'] * alpha0)
    candidate = jnp.where(enough & (mfi_loss > threshold * history_mean), increased,
                          jnp.where(enough & (mfi_loss < history_mean / threshold), decreased, alpha))
    is_check = (step % config['alpha_update_interval'] == 0) & (step >= alpha_warmup_steps(config))
    return jnp.where(is_check, candidate, alpha)


def push_loss_window(loss_window: Array, window_count: Array, loss: Array) -> tuple[Array, Array]:
    """Shift the window left and put `loss` in the last slot; count ← min(count + 1, W)."""
    window = jnp.roll(loss_window, -1).at[-1].set(loss)
    return window, jnp.minimum(window_count + 1, loss_window.shape[0])


def alpha_warmup_steps(config: Any) -> int:
    """Updates before α may change: int(alpha_warmup_fraction · offline_steps)."""
    return int(config['alpha_warmup_fraction'] * config['offline_steps'])


def actor_lr_schedule(config: Any) -> optax.Schedule:
    """Linear warm-up 0 → actor_lr over lr_warmup_fraction·offline_steps, cosine to lr_min_ratio·actor_lr at
    offline_steps, then constant (optax counts optimiser updates, starting at 0)."""
    warmup = int(config['lr_warmup_fraction'] * config['offline_steps'])
    if config['offline_steps'] <= warmup:
        raise ValueError(f"offline_steps={config['offline_steps']} must exceed the LR warm-up ({warmup} steps)")
    return optax.warmup_cosine_decay_schedule(0.0, config['actor_lr'], warmup, config['offline_steps'],
                                              config['actor_lr'] * config['lr_min_ratio'])


# ---------------------------------------------------------------------------------------------------------

class MFQLAgent(flax.struct.PyTreeNode):
    """MeanFlowQL agent. Params live under `network.params['modules_critic' | 'modules_actor']`."""

    rng: Array
    network: TrainState
    target_critic_params: Any  # {'modules_critic': ...}: only ever changed by the Polyak update
    alpha: Array  # current MFI weight α (float32 scalar)
    mfi_loss_window: Array  # (alpha_window,) recent L_MFI values at α check steps, newest last
    mfi_loss_window_count: Array  # int32 scalar: filled slots of the window
    step: Array  # int32 scalar: completed updates
    config: Any = nonpytree_field()

    def encode(self, observations: Array, params: Any = None) -> Array:
        """The actor's input features: its encoder's output (B, 512) for frames (B, H, W, C) with an `encoder`,
        else the (z-scored) states themselves."""
        if self.config['encoder'] is None:
            return observations
        return self.network.select('actor_encoder')(observations, params=params)

    def actor_fn(self, params: Any = None) -> Callable[[Array, Array, Array], Array]:
        """g_θ(s (B, o), a_t (B, d), t (B, 1) or shared (1, 1)) -> (B, d) with `params` (None: current, constant);
        s is the actor's features (`encode`). The t = 1 calls pass a shared (1, 1) time so the DiT's time
        conditioning runs once, not per row."""
        return lambda s, z, t: self.network.select('actor')(s, z, t, params=params)

    def one_step_actions(self, features: Array, noise: Array, params: Any = None) -> Array:
        """The single-sample action g_θ(s, e, 1), unclipped: features (B, o) (`encode`), noise (B, d) -> (B, d)."""
        return self.actor_fn(params)(features, noise, jnp.ones((1, 1)))

    def critic_loss(self, batch: dict, grad_params: Any, candidate_noise: Array) -> tuple[Array, dict]:
        """y = r + γ · mask · agg_m Q̄_m(s', a'),  a' = `best_of_n`(s', candidate_noise (N, B, d)) (current
        actor, target critic);  L = mean_{m,B} (Q_m(s, a) − stop_gradient(y))², agg = mean or min over the
        2 members."""
        _, next_q = self.best_of_n(batch['next_observations'], candidate_noise)  # (2, B), target critic
        next_q = next_q.mean(axis=0) if self.config['q_agg'] == 'mean' else next_q.min(axis=0)
        target_q = batch['rewards'] + self.config['discount'] * batch['masks'] * next_q
        q = self.network.select('critic')(batch['observations'], batch['actions'], params=grad_params)
        loss = jnp.mean(jnp.square(q - jax.lax.stop_gradient(target_q)[None]))
        return loss, {'loss': loss, 'q_mean': q.mean(), 'q_max': q.max(), 'q_min': q.min(),
                      'target_q_mean': target_q.mean()}

    def actor_loss(self, batch: dict, grad_params: Any, noise: Array,
                   features: Array | None = None) -> tuple[Array, dict]:
        """â = g_θ(s, e, 1), e = noise (B, d);  L_Q = −mean_B mean_m Q_m(s, clip(â, −1, 1)) (critic as constant;
        divided by stop_gradient(mean|Q|) if normalize_q_loss);  L_bound = mean relu(â − 1) + mean relu(−1 − â);
        L = L_Q + bound_loss_weight · L_bound. `features`: the actor's features of s under grad_params (default:
        computed here)."""
        observations = batch['observations']
        features = self.encode(observations, grad_params) if features is None else features
        actions = self.actor_fn(grad_params)(features, noise, jnp.ones((1, 1)))  # t = 1 shared by all rows
        bound_loss = jnp.mean(jax.nn.relu(actions - 1.0)) + jnp.mean(jax.nn.relu(-1.0 - actions))
        q = self.network.select('critic')(observations, jnp.clip(actions, -1.0, 1.0)).mean(axis=0)
        q_loss = -q.mean()
        if self.config['normalize_q_loss']:
            q_loss = q_loss / jax.lax.stop_gradient(jnp.abs(q).mean())
        loss = q_loss + self.config['bound_loss_weight'] * bound_loss
        return loss, {'loss': loss, 'q_loss': q_loss, 'bound_loss': bound_loss,
                      'out_of_bound_fraction': jnp.mean(jnp.any(jnp.abs(actions) > 1.0, axis=-1))}

    def mfi_loss(self, batch: dict, grad_params: Any, times: Array, noise: Array,
                 features: Array | None = None) -> tuple[Array, dict]:
        """L_MFI (see `mfi_loss_from_draws`) with g(a_t, t) = g_θ(s, a_t, t), the live params, times t (B, 1)
        and noises e (B, d). `features`: the actor's features of s under grad_params (default: computed here)."""
        actor = self.actor_fn(grad_params)
        features = self.encode(batch['observations'], grad_params) if features is None else features
        return mfi_loss_from_draws(
            lambda z, t: actor(features, z, t), batch['actions'], times, noise,
            target_clip=self.config['target_clip'], adaptive_gamma=self.config['adaptive_gamma'],
            adaptive_c=self.config['adaptive_c'])

    def total_loss(self, batch: dict, grad_params: Any, rng: Array) -> tuple[Array, dict]:
        """`total_loss_from_draws` with the draws of `draw_loss_noise(rng)`."""
        return self.total_loss_from_draws(batch, grad_params,
                                          draw_loss_noise(rng, *batch['actions'].shape, self.config))

    def total_loss_from_draws(self, batch: dict, grad_params: Any, noise: LossNoise) -> tuple[Array, dict]:
        """L = L_critic + L_actor + α · L_MFI, α from `adaptive_alpha` for update step + 1 (or fixed).
        `batch` holds raw observations; they are z-scored here (if `normalize_observations`)."""
        batch = normalize_batch(self.config, batch)
        features = self.encode(batch['observations'], grad_params)  # once for both actor losses
        critic_loss, critic_info = self.critic_loss(batch, grad_params, noise.target_candidate_noise)
        actor_loss, actor_info = self.actor_loss(batch, grad_params, noise.actor_noise, features)
        mfi_loss, mfi_info = self.mfi_loss(batch, grad_params, noise.mfi_times, noise.mfi_noise, features)
        alpha = self.alpha
        if self.config['alpha_mode'] == 'adaptive':
            alpha = adaptive_alpha(self.alpha, self.mfi_loss_window, self.mfi_loss_window_count, self.step + 1,
                                   jax.lax.stop_gradient(mfi_loss), self.config)
        loss = critic_loss + actor_loss + alpha * mfi_loss
        info = {f'critic/{k}': v for k, v in critic_info.items()}
        info |= {f'actor/{k}': v for k, v in (actor_info | mfi_info).items()}
        return loss, info | {'alpha': alpha, 'total/loss': loss}

    def validation_metrics(self, batch: dict, rng: Array) -> dict:
        """`total_loss`'s info on a validation batch, with the current parameters and no update."""
        return self.total_loss(batch, self.network.params, rng)[1]

    @jax.jit
    def update(self, batch: dict) -> tuple['MFQLAgent', dict]:
        """`update_from_draws` with this step's draws from the agent's key."""
        new_rng, loss_rng = jax.random.split(self.rng)
        noise = draw_loss_noise(loss_rng, *batch['actions'].shape, self.config)
        return self.replace(rng=new_rng).update_from_draws(batch, noise)

    def update_from_draws(self, batch: dict, noise: LossNoise) -> tuple['MFQLAgent', dict]:
        """One joint gradient step on `total_loss_from_draws`, the Polyak target update (post-step params),
        then α bookkeeping. Pure; the agent's key is left as it is."""
        grads, info = jax.grad(lambda p: self.total_loss_from_draws(batch, p, noise), has_aux=True)(
            self.network.params)
        info['critic/grad_norm'] = optax.tree.norm(grads['modules_critic'])
        info['actor/grad_norm'] = optax.tree.norm(grads['modules_actor'])  # the actor's encoder not included
        info['actor/lr'] = actor_lr_schedule(self.config)(self.network.step)
        network = self.network.apply_gradients(grads)
        target = polyak_update({'modules_critic': network.params['modules_critic']}, self.target_critic_params,
                               self.config['tau'])
        step = self.step + 1
        window, count = self.mfi_loss_window, self.mfi_loss_window_count
        if self.config['alpha_mode'] == 'adaptive':  # record L_MFI on every check step, warm-up included
            pushed_window, pushed_count = push_loss_window(window, count, info['actor/mfi_loss'])
            is_check = step % self.config['alpha_update_interval'] == 0
            window = jnp.where(is_check, pushed_window, window)
            count = jnp.where(is_check, pushed_count, count)
        agent = self.replace(network=network, target_critic_params=target, alpha=info['alpha'],
                             mfi_loss_window=window, mfi_loss_window_count=count, step=step)
        return agent, info

    def best_of_n(self, observations: Array, noises: Array) -> tuple[Array, Array]:
        """Value-guided rejection sampling, all candidates in one batched call.

        observations (B, o), already z-scored if `normalize_observations`; noises (N, B, d). Candidates
        a_n = clip(g_θ(s, e_n, 1), −1, 1) (current params, no gradient), scored by the target critic's
        ensemble mean (reduced explicitly over axis 0). Frames (B, H, W, C) are encoded once for the actor; the
        target critic encodes its N·B tiled copies (its encoder is inside the critic module).
        Returns the argmax action (B, d) and its per-member target Q (2, B)."""
        num, batch_size, action_dim = noises.shape

        def tile(x: Array) -> Array:
            return jnp.broadcast_to(x, (num, *x.shape)).reshape(num * batch_size, *x.shape[1:])

        tiled_obs, tiled_features = tile(observations), tile(self.encode(observations))
        flat_noises = noises.reshape(num * batch_size, action_dim)
        actions = jnp.clip(self.actor_fn()(tiled_features, flat_noises, jnp.ones((1, 1))), -1.0, 1.0)
        q = self.network.select('critic')(tiled_obs, actions, params=self.target_critic_params)
        q = q.reshape(q.shape[0], num, batch_size)  # (members, N, B)
        best = jnp.argmax(q.mean(axis=0), axis=0)  # (B,)
        best_actions = jnp.take_along_axis(actions.reshape(num, batch_size, action_dim), best[None, :, None], 0)[0]
        return best_actions, jnp.take_along_axis(q, best[None, None, :], axis=1)[:, 0]

    @jax.jit
    def sample_actions(self, observations: Array, rng: Array, temperature: float = 1.0) -> Array:
        """Actions in [−1, 1]: best of num_candidates_eval one-step samples g_θ(s, e_n, 1), e_n ~ N(0,
        temperature² I) (N = 1: a single sample, no Q). Raw observations (B, o) -> (B, d); a single
        observation (o,) -> (d,) (frames: (B, H, W, C) and (H, W, C)). Temperature 1 is the trained policy; other
        values are for diagnostics (0: the deterministic g_θ(s, 0, 1), whatever N)."""
        single = observations.ndim == (1 if self.config['encoder'] is None else 3)
        observations = normalize_observations(self.config, observations[None] if single else observations)
        num = self.config['num_candidates_eval']
        noises = temperature * jax.random.normal(rng, (num, observations.shape[0], self.config['action_dim']))
        if num == 1:
            actions = jnp.clip(self.one_step_actions(self.encode(observations), noises[0]), -1.0, 1.0)
        else:
            actions, _ = self.best_of_n(observations, noises)
        return actions[0] if single else actions

    @classmethod
    def create(cls, rng: Array, example_batch: dict, config: ml_collections.ConfigDict | dict) -> 'MFQLAgent':
        """Build networks, optimiser and state from an example batch (pure; `jax.vmap`-able over rng)."""
        config = _frozen_config(config, example_batch)
        init_rng, rng = jax.random.split(rng)
        observations, actions = example_batch['observations'], example_batch['actions']
        if config['actor_arch'] == 'dit':
            actor = DiTPolicy(config['action_dim'], config['actor_hidden_dim'], config['actor_depth'],
                              config['actor_mlp_ratio'], config['actor_residual_scale'])
        else:
            actor = MLPPolicy(config['action_dim'], config['actor_mlp_hidden_dims'])
        critic = CriticEnsemble(config['value_hidden_dims'], config['value_layer_norm'], num_members=2,
                                encoder=make_encoder(config['encoder']))
        modules, inputs, features = {'critic': critic, 'actor': actor}, {}, observations
        if config['encoder'] is not None:
            modules['actor_encoder'] = make_encoder(config['encoder'])
            inputs['actor_encoder'] = (observations,)
            features = jnp.zeros((observations.shape[0], modules['actor_encoder'].mlp_hidden_dims[-1]))
        network_def = ModuleDict(modules)
        times = jnp.ones((observations.shape[0], 1), features.dtype)
        params = network_def.init(init_rng, critic=(observations, actions),
                                  actor=(features, actions, times), **inputs)['params']
        network = TrainState.create(network_def, params, _optimizer(config))
        return cls(rng=rng, network=network, target_critic_params={'modules_critic': params['modules_critic']},
                   alpha=jnp.asarray(config['alpha'], jnp.float32),
                   mfi_loss_window=jnp.zeros((config['alpha_window'],), jnp.float32),
                   mfi_loss_window_count=jnp.zeros((), jnp.int32), step=jnp.zeros((), jnp.int32), config=config)


AGENT_CLASS = MFQLAgent  # the class the training loop builds (agents/__init__.py)
DISPLAY_NAME = 'MeanFlowQL'  # how results tables name the agent (its paper's name)


def _optimizer(config: dict) -> optax.GradientTransformation:
    """Critic: clip(global norm) → Adam(critic_lr); actor: clip(global norm) → Adam(warm-up + cosine).
    The global norm is computed per partition, as in the authors' `multi_transform`."""
    def partition(learning_rate: Any) -> optax.GradientTransformation:
        return optax.chain(optax.clip_by_global_norm(config['grad_clip_norm']), optax.adam(learning_rate))

    def labels(params: Any) -> Any:
        return {name: jax.tree_util.tree_map(lambda _: 'critic' if name == 'modules_critic' else 'actor', tree)
                for name, tree in params.items()}

    return optax.multi_transform({'critic': partition(config['critic_lr']),
                                  'actor': partition(actor_lr_schedule(config))}, labels)


def _frozen_config(config: ml_collections.ConfigDict | dict, example_batch: dict) -> flax.core.FrozenDict:
    """The shared checks and freezing (`freeze_config`: keys, every value against `CONFIG_RULES` and the values
    together, batch shapes, observation statistics, `action_dim`), then the warm-up length. ValueError naming the
    key."""
    config = freeze_config(config, get_config(), example_batch, rules=CONFIG_RULES)
    actor_lr_schedule(config)  # validates the warm-up length
    return config


CONFIG_RULES = {  # what each get_config key may be (agents/config_rules.py); checked before any compute
    'actor_lr': '> 0', 'critic_lr': '> 0', 'lr_min_ratio': '[0, 1]', 'lr_warmup_fraction': '[0, 1)',
    'offline_steps': 'int > 0', 'batch_size': 'int > 0', 'discount': '(0, 1]', 'tau': '(0, 1]',
    'q_agg': ('mean', 'min'), 'value_hidden_dims': 'ints > 0', 'value_layer_norm': 'bool',
    'actor_arch': ('dit', 'mlp'), 'actor_hidden_dim': 'int > 0', 'actor_depth': 'int > 0',
    'actor_mlp_ratio': 'int > 0', 'actor_residual_scale': '> 0', 'actor_mlp_hidden_dims': 'ints > 0',
    'alpha': '>= 0', 'alpha_mode': ('adaptive', 'fixed'), 'alpha_update_interval': 'int > 0', 'alpha_window': 'int > 0',
    'alpha_warmup_fraction': '[0, 1]', 'alpha_threshold': '> 0', 'alpha_increase': '> 0', 'alpha_decrease': '> 0',
    'alpha_min_ratio': '> 0', 'alpha_max_ratio': '> 0', 'time_steps': 'int > 0', 'adaptive_gamma': '[0, 1]',
    'adaptive_c': '> 0', 'target_clip': '> 0', 'bound_loss_weight': '>= 0', 'normalize_q_loss': 'bool',
    'num_candidates_eval': 'int > 0', 'num_candidates_target': 'int > 0', 'grad_clip_norm': '> 0',
    'normalize_observations': 'bool', 'encoder': (None, 'impala', 'impala_small', 'impala_debug'),
    'frame_stack': 'int > 0', 'p_aug': '[0, 1]',
}


def get_config() -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict(dict(
        agent_name='mfql',  # registry name (agents/__init__.py)
        actor_lr=1e-4,  # peak actor learning rate of the warm-up + cosine schedule (authors' `lr`)
        critic_lr=3e-4,  # constant critic learning rate (hard-coded 3e-4 in the authors' code; paper says 1e-4)
        lr_min_ratio=0.1,  # actor LR at the end of offline training = actor_lr · lr_min_ratio
        lr_warmup_fraction=0.05,  # linear actor-LR warm-up over this fraction of offline_steps
        offline_steps=1_000_000,  # length of the LR schedule and α warm-up; main.py sets it from its flag
        batch_size=256,  # transitions per update (read by the training loop)
        discount=0.99,  # γ in the Bellman target
        tau=0.005,  # Polyak rate of the target critic (post-step params, as the authors)
        q_agg='mean',  # 'mean' | 'min' over the 2 target-critic members in the Bellman target
        value_hidden_dims=(512, 512, 512, 512),  # critic MLP hidden sizes (GELU)
        value_layer_norm=True,  # LayerNorm after each critic hidden activation
        actor_arch='dit',  # 'dit': the authors' one-token adaLN-Zero DiT; 'mlp': plain residual MLP (cheaper)
        actor_hidden_dim=256,  # DiT width H
        actor_depth=3,  # number of DiT blocks
        actor_mlp_ratio=4,  # DiT block MLP width = ratio · H
        actor_residual_scale=0.1,  # DiT outer residual x ← x + scale · block increment
        actor_mlp_hidden_dims=(512, 512, 512, 512),  # hidden sizes of the 'mlp' actor
        alpha=10.0,  # α₀: weight of the MFI (behaviour-cloning) loss; tune per task
        alpha_mode='adaptive',  # 'adaptive': the authors' ×1.2/×0.8 rule; 'fixed': α = alpha throughout
        alpha_update_interval=2000,  # K: α check (and loss-window push) every K updates
        alpha_window=20,  # W: number of past L_MFI values averaged for the α rule
        alpha_warmup_fraction=0.1,  # α may change only from update int(fraction · offline_steps) on
        alpha_threshold=5.0,  # increase α if L_MFI > thr · mean, decrease if L_MFI < mean / thr
        alpha_increase=1.2,  # multiplicative increase factor
        alpha_decrease=0.8,  # multiplicative decrease factor
        alpha_min_ratio=0.1,  # α ≥ alpha_min_ratio · α₀
        alpha_max_ratio=10.0,  # α ≤ alpha_max_ratio · α₀
        time_steps=10000,  # T: t = k/T, k ~ U{1..T} if T ≤ 1000, else t ~ U(0, 1) (default: continuous)
        adaptive_gamma=0.8,  # γ of the adaptive L2 weight (δ² + c)^−(1−γ)
        adaptive_c=1e-4,  # c of the adaptive L2 weight
        target_clip=5.0,  # MFI target clipped to ±target_clip (hard-coded in the authors' code)
        bound_loss_weight=1.0,  # weight of mean relu(|â| − 1) in the actor loss
        normalize_q_loss=False,  # divide the Q loss by stop_gradient(mean |Q|)
        num_candidates_eval=5,  # N for actions at evaluation (best of N by target Q; 1 = plain sample)
        num_candidates_target=5,  # N in the Bellman target (authors intended N//2; 5 is what ran)
        grad_clip_norm=1.0,  # global-norm gradient clipping, per partition (critic / actor)
        normalize_observations=True,  # z-score observations with the training set's statistics (authors' default)
        observation_mean=None,  # per-dimension mean; None: the training loop fills in the training set's
        observation_std=None,  # per-dimension std (dimensions with std < 1e-6: 1); None: filled likewise
        encoder=ml_collections.config_dict.placeholder(str),  # pixel encoder (networks/encoders.py); None: states
        frame_stack=1,  # frames per observation on visual tasks (read by the data and the envs; FQL: 3)
        p_aug=0.0,  # probability of FQL's random-shift augmentation of a visual batch (read by the data; FQL: 0.5)
    ))
