"""Toy check of the paper's key claim: one-step sampling of a 16-mode distribution with the residual MeanFlow form.

Data: a 4×4 grid of isotropic Gaussians in [-1, 1]², centres at {−0.75, −0.25, 0.25, 0.75}² (spacing 0.5 = 5σ),
σ = 0.1, equal weights. Outer modes sit 2.5σ from the box edge, so ~0.6% of true samples fall outside [-1, 1]².

Three ways to train a flow with the MeanFlow identity (b = r = 0, t ~ U(0, 1), adaptive L2 with γ = 0.8,
c = 1e-4, targets clipped to ±5 — all as in agents/mfql.py), then sample in one step from e ~ N(0, I):
  residual  g(a_t, t), loss = agents.mfql.mfi_loss_from_draws (the agent's code);   a = g(e, 1)
  u_form    u(a_t, t), target sg(v − t·du/dt), du/dt = jvp(u, (a_t, t), (v, 1));       a = e − u(e, 1)
            (the original MeanFlow parameterisation; the same function class, since g = a_t − u)
  naive     u(e, t) with the noise e as input instead of a_t, target sg(v − t·∂u/∂t);  a = e − u(e, 1)
            (the form the paper argues against; since e is independent of a, its regression optimum is
            u = e − E[a], so it should collapse to the data mean)
All three use the same MLP (4×256, GELU, zero-initialised output layer), Adam with a cosine decay to 0,
batches and seed.

Metrics on `--num_eval` one-step samples: modes covered (≥ 2% of samples within 2σ of a centre),
sliced-Wasserstein-2 distance to fresh true samples (the floor is the true-vs-true distance at the same
sample size, averaged over 5 pairs), and the fraction of one-step samples outside [-1, 1]² averaged over the
first 1000 training steps (256 samples per step).

Run (writes benchmarks/results/toy_multimodal.{md,png}):
  python -m benchmarks.toy_multimodal
"""

import argparse
import functools
import os
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from agents.mfql import adaptive_l2_loss, draw_mfi_inputs, mfi_loss_from_draws, sample_times
from networks.policy import MLPPolicy

GRID = (-0.75, -0.25, 0.25, 0.75)
CENTRES = np.array([(x, y) for x in GRID for y in GRID], np.float32)  # (16, 2)
SIGMA = 0.1
VARIANTS = ('residual', 'u_form', 'naive')
TIME_STEPS, TARGET_CLIP, ADAPTIVE_GAMMA, ADAPTIVE_C = 10000, 5.0, 0.8, 1e-4
OOB_STEPS, OOB_SAMPLES = 1000, 256


def sample_grid(rng: jax.Array, num: int) -> jax.Array:
    """num samples (num, 2) from the 16-mode grid mixture."""
    mode_rng, noise_rng = jax.random.split(rng)
    modes = jax.random.randint(mode_rng, (num,), 0, len(CENTRES))
    return jnp.asarray(CENTRES)[modes] + SIGMA * jax.random.normal(noise_rng, (num, 2))


def _net_fn(network: MLPPolicy, params: Any) -> Callable[[jax.Array, jax.Array], jax.Array]:
    """f(z (B, 2), t (B, 1) or (1, 1)) -> (B, 2): the MLP without observations (empty (B, 0) input)."""
    return lambda z, t: network.apply(params, jnp.zeros((z.shape[0], 0), z.dtype), z, t)


def variant_loss(variant: str, net: Callable, actions: jax.Array, rng: jax.Array) -> jax.Array:
    """MeanFlow-identity loss of one variant for data actions (B, 2)."""
    if variant == 'residual':
        times, noises = draw_mfi_inputs(rng, *actions.shape, TIME_STEPS, actions.dtype)
        return mfi_loss_from_draws(net, actions, times, noises, target_clip=TARGET_CLIP,
                                   adaptive_gamma=ADAPTIVE_GAMMA, adaptive_c=ADAPTIVE_C)[0]
    time_rng, noise_rng = jax.random.split(rng)
    times = sample_times(time_rng, actions.shape[0], TIME_STEPS)
    noises = jax.random.normal(noise_rng, actions.shape)
    velocities = noises - actions
    if variant == 'u_form':  # input a_t, moving along the path: du/dt = ∂u/∂z · v + ∂u/∂t
        inputs, input_tangents = (1.0 - times) * actions + times * noises, velocities
    elif variant == 'naive':  # input e, fixed along the path: du/dt = ∂u/∂t
        inputs, input_tangents = noises, jnp.zeros_like(noises)
    else:
        raise ValueError(f'unknown variant {variant!r}; choose from {VARIANTS}')
    u, u_dot = jax.jvp(net, (inputs, times), (input_tangents, jnp.ones_like(times)))
    target = jnp.clip(jax.lax.stop_gradient(velocities - times * u_dot), -TARGET_CLIP, TARGET_CLIP)
    return adaptive_l2_loss(u, target, ADAPTIVE_GAMMA, ADAPTIVE_C)[0]


def one_step_samples(variant: str, net: Callable, noises: jax.Array) -> jax.Array:
    """Actions (B, 2) from noises (B, 2) in one network call at t = 1 (b = 0)."""
    output = net(noises, jnp.ones((1, 1)))
    return output if variant == 'residual' else noises - output


def train(variant: str, steps: int, batch_size: int, hidden_dims: tuple[int, ...], learning_rate: float,
          seed: int) -> tuple[Callable, Any, np.ndarray]:
    """Fit one variant. Returns (net constructor over params, final params, out-of-bound fractions of the
    first min(steps, 1000) steps)."""
    network = MLPPolicy(action_dim=2, hidden_dims=hidden_dims)
    init_rng, data_rng = jax.random.split(jax.random.PRNGKey(seed))
    params = network.init(init_rng, jnp.zeros((1, 0)), jnp.zeros((1, 2)), jnp.zeros((1, 1)))
    optimizer = optax.adam(optax.cosine_decay_schedule(learning_rate, steps))  # cosine to 0 over the run

    @functools.partial(jax.jit, static_argnames=('num_steps', 'track_bounds'))
    def run(params, opt_state, rng, num_steps: int, track_bounds: bool):
        def step(carry, _):
            params, opt_state, rng = carry
            rng, batch_rng, loss_rng, probe_rng = jax.random.split(rng, 4)
            actions = sample_grid(batch_rng, batch_size)
            loss, grads = jax.value_and_grad(
                lambda p: variant_loss(variant, _net_fn(network, p), actions, loss_rng))(params)
            updates, opt_state = optimizer.update(grads, opt_state, params)
            params = optax.apply_updates(params, updates)
            out_of_bounds = jnp.float32(0.0)
            if track_bounds:  # one-step samples from the params used in this step
                probe = jax.random.normal(probe_rng, (OOB_SAMPLES, 2))
                samples = one_step_samples(variant, _net_fn(network, carry[0]), probe)
                out_of_bounds = jnp.mean(jnp.any(jnp.abs(samples) > 1.0, axis=-1))
            return (params, opt_state, rng), out_of_bounds

        (params, opt_state, rng), fractions = jax.lax.scan(step, (params, opt_state, rng), None, length=num_steps)
        return params, opt_state, rng, fractions

    opt_state, rng = optimizer.init(params), data_rng
    first = min(steps, OOB_STEPS)
    params, opt_state, rng, fractions = run(params, opt_state, rng, num_steps=first, track_bounds=True)
    remaining = steps - first
    chunk = 2000
    while remaining > 0:
        params, opt_state, rng, _ = run(params, opt_state, rng, num_steps=min(chunk, remaining), track_bounds=False)
        remaining -= min(chunk, remaining)
    return functools.partial(_net_fn, network), params, np.asarray(fractions)


def modes_covered(samples: np.ndarray, min_fraction: float = 0.02) -> int:
    """Number of centres with ≥ min_fraction of the samples within 2σ (Euclidean)."""
    distances = np.linalg.norm(samples[:, None, :] - CENTRES[None], axis=-1)  # (n, 16)
    return int(np.sum(np.mean(distances < 2 * SIGMA, axis=0) >= min_fraction))


def in_mode_fraction(samples: np.ndarray) -> float:
    """Fraction of samples within 2σ of any centre (a precision measure; ≈ 1 − e^−2 = 86% for true samples)."""
    distances = np.linalg.norm(samples[:, None, :] - CENTRES[None], axis=-1)
    return float(np.mean(distances.min(axis=1) < 2 * SIGMA))


def sliced_wasserstein(x: np.ndarray, y: np.ndarray, num_projections: int = 512, seed: int = 0) -> float:
    """SW2 = sqrt(mean over random unit directions θ of W2²(θ·x, θ·y)), equal sample sizes."""
    if x.shape != y.shape:
        raise ValueError(f'sliced_wasserstein needs equal sample sizes, got {x.shape} and {y.shape}')
    angles = np.random.default_rng(seed).uniform(0, np.pi, num_projections)
    directions = np.stack([np.cos(angles), np.sin(angles)], axis=1)  # (L, 2)
    px, py = np.sort(x @ directions.T, axis=0), np.sort(y @ directions.T, axis=0)
    return float(np.sqrt(np.mean((px - py) ** 2)))


def evaluate(variant: str, net_of: Callable, params: Any, num_eval: int, seed: int) -> dict:
    """Modes, SW2 to fresh true samples, and the final out-of-bound fraction for one trained variant."""
    noise_rng, true_rng = jax.random.split(jax.random.PRNGKey(seed + 1000))
    noises = jax.random.normal(noise_rng, (num_eval, 2))
    samples = np.asarray(jax.jit(lambda p, e: one_step_samples(variant, net_of(p), e))(params, noises))
    true = np.asarray(sample_grid(true_rng, num_eval))
    return dict(samples=samples, modes=modes_covered(samples), sw=sliced_wasserstein(samples, true),
                in_mode=in_mode_fraction(samples),
                final_oob=float(np.mean(np.any(np.abs(samples) > 1.0, axis=-1))))


def sw_floor(num_eval: int, seed: int, pairs: int = 5) -> tuple[float, float]:
    """Mean and standard deviation of SW2 between independent true sample sets of size num_eval."""
    values = []
    for i in range(pairs):
        a_rng, b_rng = jax.random.split(jax.random.PRNGKey(seed + 2000 + i))
        values.append(sliced_wasserstein(np.asarray(sample_grid(a_rng, num_eval)),
                                          np.asarray(sample_grid(b_rng, num_eval))))
    return float(np.mean(values)), float(np.std(values))


def plot(results: dict, true: np.ndarray, path: str) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    panels = [('true samples', true)] + [(f"{name}: {r['modes']}/16 modes, SW {r['sw_ratio']:.2f}x floor",
                                          r['samples']) for name, r in results.items()]
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 4.2))
    for ax, (title, points) in zip(axes, panels):
        ax.scatter(points[:, 0], points[:, 1], s=1, alpha=0.3)
        ax.scatter(CENTRES[:, 0], CENTRES[:, 1], s=12, c='red', marker='x')
        ax.plot([-1, 1, 1, -1, -1], [-1, -1, 1, 1, -1], 'k--', lw=0.8)
        ax.set(xlim=(-1.6, 1.6), ylim=(-1.6, 1.6), aspect='equal', title=title)
        ax.title.set_fontsize(9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--steps', type=int, default=6000, help='training steps per variant')
    parser.add_argument('--batch_size', type=int, default=1024)
    parser.add_argument('--hidden_dims', type=int, nargs='+', default=[256, 256, 256, 256])
    parser.add_argument('--learning_rate', type=float, default=1e-3, help='Adam, cosine decay to 0 over --steps')
    parser.add_argument('--num_eval', type=int, default=4096, help='samples for modes and SW')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--variants', nargs='+', default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument('--out', default=os.path.join('exp', 'benchmarks', 'toy_multimodal'),
                        help='output path without extension (the committed results: benchmarks/results/toy_multimodal)')
    args = parser.parse_args()
    start = time.time()
    floor, floor_std = sw_floor(args.num_eval, args.seed)
    results = {}
    for variant in args.variants:
        variant_start = time.time()
        net_of, params, fractions = train(variant, args.steps, args.batch_size, tuple(args.hidden_dims),
                                          args.learning_rate, args.seed)
        result = evaluate(variant, net_of, params, args.num_eval, args.seed)
        result |= dict(sw_ratio=result['sw'] / floor, early_oob=float(fractions.mean()), init_oob=float(fractions[0]),
                       seconds=time.time() - variant_start)
        results[variant] = result
        print(f"{variant}: modes {result['modes']}/16, in-mode {result['in_mode']:.3f}, "
              f"SW {result['sw']:.4f} ({result['sw_ratio']:.2f}x floor), "
              f"OOB first {len(fractions)} steps {result['early_oob']:.4f}, final {result['final_oob']:.4f}, "
              f"{result['seconds']:.0f}s", flush=True)
    true = np.asarray(sample_grid(jax.random.PRNGKey(args.seed + 3000), args.num_eval))
    true_oob = float(np.mean(np.any(np.abs(true) > 1.0, axis=-1)))
    true_in_mode = in_mode_fraction(true)
    wall = time.time() - start
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    plot(results, true, args.out + '.png')
    write_report(args, results, floor, floor_std, true_oob, true_in_mode, wall)
    print(f'wrote {args.out}.md and .png in {wall:.0f}s')


def write_report(args: argparse.Namespace, results: dict, floor: float, floor_std: float, true_oob: float,
                 true_in_mode: float, wall: float) -> None:
    command = 'python -m benchmarks.toy_multimodal' + ''.join(
        f' --{k}={v}' for k, v in [('steps', args.steps), ('batch_size', args.batch_size),
                                   ('seed', args.seed)] if v != {'steps': 6000, 'batch_size': 1024, 'seed': 0}[k])
    lines = [
        '# Toy: 16-mode grid, one-step sampling (MFI loss only)', '',
        f'Command: `{command}` — wall time {wall:.0f} s on a 2-core CPU shared with other jobs '
        f'(jax {jax.__version__}).', '',
        'Data: 4×4 Gaussian grid, centres {−0.75, −0.25, 0.25, 0.75}², σ = 0.1; '
        f'{true_oob:.2%} of true samples lie outside [−1, 1]².',
        f'Model: MLP {tuple(args.hidden_dims)} + zero output layer, inputs (z, t); Adam {args.learning_rate} '
        '(cosine decay to 0), '
        f'batch {args.batch_size}, {args.steps} steps, seed {args.seed}; t ~ U(0, 1), b = 0, adaptive L2 '
        '(γ = 0.8, c = 1e-4), targets clipped to ±5. The residual form runs `agents.mfql.mfi_loss_from_draws`.',
        f'Metrics on {args.num_eval} one-step samples. SW2 floor (true vs true, same size, 5 pairs): '
        f'{floor:.4f} ± {floor_std:.4f}.', '',
        '| variant | sampling | modes covered (≥2% within 2σ) | within 2σ of a centre | SW2 | SW2 / floor | '
        f'out of [−1,1]², first {min(args.steps, OOB_STEPS)} steps | out of [−1,1]² at step 0 | '
        'out of [−1,1]², final | time (s) |',
        '|---|---|---|---|---|---|---|---|---|---|',
        f'| true samples | | 16/16 | {true_in_mode:.1%} | {floor:.4f} | 1.00 | | | {true_oob:.2%} | |',
    ]
    sampling = {'residual': 'a = g(e, 1)', 'u_form': 'a = e − u(e, 1), input a_t',
                'naive': 'a = e − u(e, 1), input e'}
    for name, r in results.items():
        lines.append(f"| {name} | {sampling[name]} | {r['modes']}/16 | {r['in_mode']:.1%} | {r['sw']:.4f} | "
                     f"{r['sw_ratio']:.2f} | "
                     f"{r['early_oob']:.2%} | {r['init_oob']:.2%} | {r['final_oob']:.2%} | {r['seconds']:.0f} |")
    lines += ['', '## Checks', '']
    if 'residual' in results:
        r = results['residual']
        passed = r['modes'] >= 15 and r['sw_ratio'] <= 3.0
        lines.append(f"- Residual form: {r['modes']}/16 modes (need ≥ 15) and SW2 {r['sw_ratio']:.2f}× the floor "
                     f"(need ≤ 3): **{'pass' if passed else 'FAIL'}**.")
    for name in ('u_form', 'naive'):
        if name in results:
            r = results[name]
            fits = r['modes'] >= 15 and r['sw_ratio'] <= 3.0
            lines.append(f"- {name}: {r['modes']}/16 modes, SW2 {r['sw_ratio']:.2f}× floor, "
                         f"{r['early_oob']:.1%} of early samples out of bounds — "
                         f"{'fits the distribution as well (no failure of the fit)' if fits else 'fails to fit'}.")
    if 'naive' in results:
        samples = results['naive']['samples']
        lines.append(f"- naive samples: mean ({samples[:, 0].mean():+.3f}, {samples[:, 1].mean():+.3f}), std "
                     f"{samples.std(axis=0).mean():.3f} per axis "
                     f"(data: mean 0, std {np.sqrt(0.3125 + SIGMA ** 2):.3f}); "
                     'a collapse to the data mean is what its regression optimum u = e − E[a] predicts.')
    lines += [f'- The SW2 floor itself varies by ±{floor_std / floor:.0%} between sample pairs, so ratio differences '
              'smaller than that are not meaningful. Out-of-bound fractions count one-step samples (256 per step) '
              'with any coordinate outside [−1, 1]; at step 0 the residual form outputs exactly 0 (g ≡ 0), the '
              'u forms output the noise itself (u ≡ 0).',
              '- "Within 2σ of a centre" is a precision measure the two required metrics lack: one-step samples '
              'that pass on modes and SW2 can still put much of their mass between the modes (see the PNG).',
              '', '![samples](toy_multimodal.png)', '']
    with open(args.out + '.md', 'w') as f:
        f.write('\n'.join(lines))


if __name__ == '__main__':
    main()
