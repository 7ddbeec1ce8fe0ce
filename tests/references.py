"""Hand-written reference losses, one per configuration family.

Written from the documented semantics only (API.md A2 for the rollout configurations:
the loss is the sum over time levels of `w[t] * loss(...)`, and with `cut_bptt` the chain
is cut (`stop_gradient`) after step `t` when `(t + 1) % cut_bptt_every == 0`). They loop
over time in Python and use nothing from the library but the stepper (or velocity, or
flow map) being trained, and for the flow configurations the time sampler, whose draws
`tests/test_flow_configurations.py` checks on its own. `tests/test_configuration.py`,
`tests/test_flow_configurations.py` and the registry (`tests/registry.py`) use them.
"""

import jax
import jax.scipy.special
import numpy as np
import jax.numpy as jnp
from helpers import apply_each, mse

sg = jax.lax.stop_gradient


def is_cut(cut_bptt, every, t):
    return cut_bptt and (t + 1) % every == 0



def ref_supervised(stepper, data, R, w, cut_bptt, every, H=1):
    history = [data[:, h] for h in range(H)]
    total = 0.0
    for t in range(R):
        inputs = history[0] if H == 1 else jnp.concatenate(history, axis=1)
        prediction = apply_each(stepper, inputs)
        total = total + w[t] * mse(prediction, data[:, H + t])
        if is_cut(cut_bptt, every, t):
            prediction = sg(prediction)
        history = history[1:] + [prediction]
    return total


def ref_branch_one(stepper, data, R, w, cut_bptt, every, ref_stepper, cut_div):
    prediction = data[:, 0]
    total = 0.0
    for t in range(R):
        target = apply_each(ref_stepper, prediction)
        if cut_div:
            target = sg(target)
        prediction = apply_each(stepper, prediction)
        total = total + w[t] * mse(prediction, target)
        if is_cut(cut_bptt, every, t):
            prediction = sg(prediction)
    return total


def ref_diverted(stepper, data, R, B, w, v, cut_bptt, every, ref_stepper, cut_div):
    main = data[:, 0]
    total = 0.0
    for t in range(R - B + 1):
        branch = main
        reference = sg(main) if cut_div else main
        branch_total = 0.0
        for b in range(B):
            branch = apply_each(stepper, branch)
            reference = apply_each(ref_stepper, reference)
            branch_total = branch_total + v[b] * mse(branch, reference)
            if is_cut(cut_bptt, every, t + b):
                branch = sg(branch)
        total = total + w[t] * branch_total
        main = apply_each(stepper, main)
        if is_cut(cut_bptt, every, t):
            main = sg(main)
    return total


def ref_mix(stepper, data, R, P, w, cut_bptt, every, ref_stepper):
    state = data[:, 0]
    total = 0.0
    for t in range(R):
        state = apply_each(stepper, state)
        total = total + w[t] * mse(state, data[:, t + 1])
        if is_cut(cut_bptt, every, t):
            state = sg(state)
    for p in range(P):
        state = apply_each(ref_stepper, state)
        total = total + w[R + p] * mse(state, data[:, R + p + 1])
    return total


def ref_residuum(stepper, data, R, w, cut_bptt, every, residuum_fn, cut_prev, cut_next):
    previous = data[:, 0]
    total = 0.0
    for t in range(R):
        following = apply_each(stepper, previous)
        residuum = residuum_fn(
            sg(following) if cut_next else following,
            sg(previous) if cut_prev else previous,
        )
        total = total + w[t] * mse(residuum)
        previous = sg(following) if is_cut(cut_bptt, every, t) else following
    return total


def ref_teacher(
    stepper, data, R, w, cut_bptt, every, masks, H=1, alpha=0.0, forcing_every=1
):
    """`masks[t][b]`: after step t, sample b continues from the truth (else prediction);
    after steps n, 2n, ... (`n = forcing_every`) the chosen input z becomes
    `alpha * truth + (1 - alpha) * z` (generalized teacher forcing)."""
    history = [data[:, h] for h in range(H)]
    total = 0.0
    for t in range(R):
        inputs = history[0] if H == 1 else jnp.concatenate(history, axis=1)
        prediction = apply_each(stepper, inputs)
        target = data[:, H + t]
        total = total + w[t] * mse(prediction, target)
        if is_cut(cut_bptt, every, t):
            prediction = sg(prediction)
        # One flag per sample, broadcast over the channel and any number of spatial axes.
        choose = jnp.asarray(masks[t], dtype=bool).reshape((-1,) + (1,) * (target.ndim - 1))
        chosen = jnp.where(choose, target, prediction)
        if (t + 1) % forcing_every == 0:
            chosen = alpha * target + (1 - alpha) * chosen
        history = history[1:] + [chosen]
    return total


def ref_temporal(stepper, data, R, w, cut_bptt, every, H=1):
    history = [data[:, h] for h in range(H)]
    total = 0.0
    for t in range(R):
        inputs = history[0] if H == 1 else jnp.concatenate(history, axis=1)
        previous = history[-1]
        prediction = apply_each(stepper, inputs)
        true_increment = data[:, H + t] - data[:, H + t - 1]
        total = total + w[t] * mse(prediction - previous, true_increment)
        if is_cut(cut_bptt, every, t):
            prediction = sg(prediction)
        history = history[1:] + [prediction]
    return total


# --- flow matching and distillation -------------------------------------------------


def _flow_inputs(data, key, num_input_steps, draw_time):
    """`(y, x1, x0, t, d)`: history stacked on channels, target, noise, time, step."""
    key_noise, key_time = jax.random.split(key)
    x1 = data[:, num_input_steps]
    history = data[:, :num_input_steps]
    y = history.reshape(history.shape[0], -1, *history.shape[3:])
    x0 = jax.random.normal(key_noise, x1.shape)
    t, d = draw_time(key_time, x1.shape[0])
    return y, x1, x0, t, d


def _per_sample(values, like):
    return values.reshape((-1,) + (1,) * (like.ndim - 1))


def _per_sample_mse(prediction, target):
    return jnp.mean((prediction - target) ** 2, axis=tuple(range(1, prediction.ndim)))


def ref_flow_matching(velocity, data, key, num_input_steps=1):
    """MSE between `v(x_t, y, t)` and `x1 - x0` with `t ~ U[0, 1]`, `x_t` interpolated.

    Same random draws as the configuration: noise from the first half of `key`, the
    time from the second half of the second half (the default sampler draws `d = 0`
    from the first).
    """

    def draw_time(key_time, batch):
        t = jax.random.uniform(jax.random.split(key_time)[1], (batch,))
        return t, None

    y, x1, x0, t, _ = _flow_inputs(data, key, num_input_steps, draw_time)
    x_t = _per_sample(t, x1) * x1 + (1 - _per_sample(t, x1)) * x0
    prediction = jax.vmap(velocity)(x_t, y, t)
    return jnp.mean(_per_sample_mse(prediction, x1 - x0))


def ref_progressive_distillation(
    student, data, key, *, teacher, sampler, num_fine_steps, velocity_space=False
):
    """One Euler step of the student against `K` midpoint steps of the teacher."""
    y, x1, x0, t, d = _flow_inputs(data, key, 1, sampler.sample)
    x_t = _per_sample(t, x1) * x1 + (1 - _per_sample(t, x1)) * x0

    def teacher_steps(x, yy, tt, dd):
        h = dd / num_fine_steps
        for k in range(num_fine_steps):
            s = tt + k * h
            half = x + 0.5 * h * teacher(x, yy, s)
            x = x + h * teacher(half, yy, s + 0.5 * h)
        return x

    target = sg(jax.vmap(teacher_steps)(x_t, y, t, d))
    prediction = x_t + _per_sample(d, x1) * jax.vmap(student)(x_t, y, t)
    error = _per_sample_mse(prediction, target)
    return jnp.mean(error / d**2 if velocity_space else error)


def ref_semigroup_distillation(flow_map, data, key, *, sampler, velocity_space=False):
    """`F_d(x_t, t)` against two frozen half steps `F_{d/2}(F_{d/2}(x_t, t), t + d/2)`."""
    y, x1, x0, t, d = _flow_inputs(data, key, 1, sampler.sample)
    x_t = _per_sample(t, x1) * x1 + (1 - _per_sample(t, x1)) * x0

    def two_half_steps(x, yy, tt, dd):
        middle = flow_map(x, yy, tt, 0.5 * dd)
        return flow_map(middle, yy, tt + 0.5 * dd, 0.5 * dd)

    target = sg(jax.vmap(two_half_steps)(x_t, y, t, d))
    prediction = jax.vmap(flow_map)(x_t, y, t, d)
    error = _per_sample_mse(prediction, target)
    return jnp.mean(error / d**2 if velocity_space else error)


# --- methods against drifting rollouts ----------------------------------------------


def ref_pushforward(stepper, data, R, K, w, cut_bptt, every, pushed_steps=None):
    """`K` steps without gradient (window b pushes only `pushed_steps[b]` of them,
    starting from the truth `data[:, K - k_b]`), then `R` supervised steps."""
    frozen = jax.tree_util.tree_map(
        lambda x: sg(x) if isinstance(x, jax.Array) else x, stepper
    )
    def pushed(k):  # every window started at the truth `data[:, K - k]`, pushed k steps
        state = data[:, K - k]
        for _ in range(k):
            state = apply_each(frozen, state)
        return state

    if pushed_steps is None:
        state = pushed(K)
    else:
        state = pushed(0)
        for k in range(1, K + 1):
            chosen = (pushed_steps == k).reshape((-1,) + (1,) * (state.ndim - 1))
            state = jnp.where(chosen, pushed(k), state)
    state = sg(state)
    total = 0.0
    for t in range(R):
        state = apply_each(stepper, state)
        total = total + w[t] * mse(state, data[:, K + 1 + t])
        if is_cut(cut_bptt, every, t):
            state = sg(state)
    return total


def ref_input_noise(stepper, data, key, relative_std, num_noisy, inner_reference):
    """`inner_reference` on the windows whose first `num_noisy` snapshots carry
    `relative_std * std(data)` Gaussian noise (the configuration's key split)."""
    noise_key, inner_key = jax.random.split(key)
    (leaf_key,) = jax.random.split(noise_key, 1)
    inputs = data[:, :num_noisy]
    noise = jax.random.normal(leaf_key, inputs.shape, data.dtype)
    noisy = data.at[:, :num_noisy].set(inputs + relative_std * jnp.std(data) * noise)
    return inner_reference(stepper, noisy, inner_key)


def ref_symmetry_augmentation(
    stepper, data, key, inner_reference, shift_axes, flip_axes=(), signs=(), rotations=False
):
    """`inner_reference` on the windows each shifted, flipped (negating the channels in
    `signs[i]` under flip `i`) and rotated by the draws the class documents, written as
    a loop over windows with concrete shifts and branches."""
    grid = data.shape[3:]
    windows = []
    # The draws are concrete even under `jax.jit`: the key is a constant here.
    with jax.ensure_compile_time_eval():
        augmentation_key, inner_key = jax.random.split(key)
        window_keys = jax.random.split(augmentation_key, data.shape[0])
        draws = []
        for window_key in window_keys:
            shift_key, flip_key, rotation_key = jax.random.split(window_key, 3)
            sizes = jnp.asarray([grid[a] for a in shift_axes], jnp.int32)
            draws.append(
                (
                    [int(v) for v in jax.random.randint(shift_key, (len(shift_axes),), 0, sizes)],
                    [bool(v) for v in jax.random.bernoulli(flip_key, 0.5, (len(flip_axes),))],
                    int(jax.random.randint(rotation_key, (), 0, 4)),
                )
            )
    for b, (shifts, flips, turns) in enumerate(draws):
        window = data[b]
        for axis, shift in zip(shift_axes, shifts):
            window = jnp.roll(window, shift, axis=2 + axis)
        for i, (axis, flip) in enumerate(zip(flip_axes, flips)):
            if flip:
                window = jnp.flip(window, axis=2 + axis)
                for channel in signs[i] if signs else ():
                    window = window.at[:, channel].multiply(-1.0)
        if rotations:
            window = jnp.rot90(window, turns, axes=(2, 3))
        windows.append(window)
    return inner_reference(stepper, jnp.stack(windows), inner_key)


def ref_window_augmentation(stepper, data, key, inner_reference, probability, transform):
    """`inner_reference` on the windows each replaced, with probability `probability`,
    by `transform(window, transform_key)` (a NumPy function), with the keys the
    per-window augmentations document, in a Python loop over windows."""
    windows = np.array(data)
    with jax.ensure_compile_time_eval():  # concrete draws even under `jax.jit`
        augmentation_key, inner_key = jax.random.split(key)
        for b, window_key in enumerate(jax.random.split(augmentation_key, len(windows))):
            apply_key, transform_key = jax.random.split(window_key)
            if bool(jax.random.bernoulli(apply_key, probability)):
                windows[b] = transform(windows[b], transform_key)
    return inner_reference(stepper, jnp.asarray(windows), inner_key)


def np_random_affine(window, key, bias_std):
    """`A x(t) + b` at every time level (and grid point), with the documented draws,
    as an explicit sum over channels."""
    num_channels = window.shape[1]
    with jax.ensure_compile_time_eval():
        matrix_key, bias_key = jax.random.split(key)
        matrix = np.asarray(jax.random.normal(matrix_key, (num_channels, num_channels)))
        bias = bias_std * np.asarray(jax.random.normal(bias_key, (num_channels,)))
    matrix = matrix / np.sqrt(num_channels)
    out = np.zeros_like(window)
    for i in range(num_channels):
        out[:, i] = bias[i]
        for j in range(num_channels):
            out[:, i] += matrix[i, j] * window[:, j]
    return out


def np_convex_combination(window, key, concentration):
    """`W x(t)` with the documented Dirichlet rows."""
    num_channels = window.shape[1]
    with jax.ensure_compile_time_eval():
        alpha = jnp.full((num_channels,), concentration)
        matrix = np.asarray(jax.random.dirichlet(key, alpha, (num_channels,)))
    out = np.zeros_like(window)
    for i in range(num_channels):
        for j in range(num_channels):
            out[:, i] += matrix[i, j] * window[:, j]
    return out


def np_delay_embedding(window, key, max_delay):
    """Channel `k` at level `t` is `x_j(t - k tau)`, or `x_j(0)` before the window."""
    num_levels, num_channels = window.shape[:2]
    with jax.ensure_compile_time_eval():
        channel_key, delay_key = jax.random.split(key)
        j = int(jax.random.randint(channel_key, (), 0, num_channels))
        tau = int(jax.random.randint(delay_key, (), 1, max_delay + 1))
    out = np.empty_like(window)
    for t in range(num_levels):
        for k in range(num_channels):
            source = t - k * tau
            out[t, k] = window[source, j] if source >= 0 else window[0, j]
    return out


def ref_mmd(samples, other, bandwidths):
    """Biased squared MMD from explicit pairwise differences (flattened samples)."""
    x = samples.reshape(samples.shape[0], -1)
    y = other.reshape(other.shape[0], -1)

    def kernel(a, b):
        squared = jnp.mean((a[:, None, :] - b[None, :, :]) ** 2, axis=-1)
        return sum(jnp.exp(-squared / (2.0 * s**2)) for s in bandwidths)

    return kernel(x, x).mean() + kernel(y, y).mean() - 2.0 * kernel(x, y).mean()


def ref_invariant_measure(stepper, data, R, bandwidths):
    """MMD between the `R` rollout states of every window and the data `u_1 ... u_R`."""
    state = data[:, 0]
    predictions = []
    for _ in range(R):
        state = apply_each(stepper, state)
        predictions.append(state)
    references = [data[:, t + 1] for t in range(R)]
    return ref_mmd(jnp.concatenate(predictions), jnp.concatenate(references), bandwidths)



def ref_entropic_ot(x, y, epsilon, num_iterations):
    """Primal entropic OT of uniform clouds: kernel-domain Sinkhorn scalings `u, v`,
    plan `diag(u) K diag(v)`, value `<P, C> + eps KL(P | a b^T)` (cost per entry)."""
    x = x.reshape(x.shape[0], -1)
    y = y.reshape(y.shape[0], -1)
    cost = jnp.mean((x[:, None, :] - y[None, :, :]) ** 2, axis=-1)
    a = jnp.full(x.shape[0], 1.0 / x.shape[0])
    b = jnp.full(y.shape[0], 1.0 / y.shape[0])
    kernel = jnp.exp(-cost / epsilon)
    v = jnp.ones_like(b)
    for _ in range(num_iterations):
        u = a / (kernel @ v)
        v = b / (kernel.T @ u)
    plan = u[:, None] * kernel * v[None, :]
    kl = jnp.sum(plan * jnp.log(plan / (a[:, None] * b[None, :])))
    return jnp.sum(plan * cost) + epsilon * kl


def ref_sinkhorn_divergence(x, y, epsilon, num_iterations):
    """`OT(x, y) - (OT(x, x) + OT(y, y)) / 2` from the primal reference."""
    return ref_entropic_ot(x, y, epsilon, num_iterations) - 0.5 * (
        ref_entropic_ot(x, x, epsilon, num_iterations)
        + ref_entropic_ot(y, y, epsilon, num_iterations)
    )


def ref_invariant_measure_sinkhorn(stepper, data, R, epsilon, num_iterations):
    """Sinkhorn divergence between the `R` rollout states of every window and `u_1 ... u_R`."""
    state = data[:, 0]
    predictions = []
    for _ in range(R):
        state = apply_each(stepper, state)
        predictions.append(state)
    references = [data[:, t + 1] for t in range(R)]
    return ref_sinkhorn_divergence(
        jnp.concatenate(predictions), jnp.concatenate(references), epsilon, num_iterations
    )

# --- few-step flow maps: u(x, y, t, d) with X_(t,t+d)(x) = x + d u -------------------
# The derivatives are taken in reverse mode, term by term (the library uses one
# forward-mode product), so the references do not share the library's mechanism.


def _partial(function, argnum):
    """Reverse-mode derivative of a vector-valued `function` in its scalar argument."""
    return jax.jacrev(function, argnums=argnum)


def ref_lagrangian_self_distillation(model, data, key, *, sampler, teacher=None):
    """`dX/dd` against flow matching (d = 0) or `sg[v_{t+d,t+d}(X)]` (d > 0)."""
    y, x1, x0, t, d = _flow_inputs(data, key, 1, sampler.sample)
    x_t = _per_sample(t, x1) * x1 + (1 - _per_sample(t, x1)) * x0
    total = 0.0
    for i in range(x1.shape[0]):
        x, c, s, h = x_t[i], y[i], t[i], d[i]
        u = model(x, c, s, h)
        du_dd = _partial(lambda hh: model(x, c, s, hh), 0)(h)
        speed = u + h * du_dd
        end_state = x + h * u
        if teacher is not None:
            target = sg(teacher(end_state, c, s + h))
        elif i < sampler.num_equal(x1.shape[0]):  # the diagonal samples come first
            target = x1[i] - x0[i]
        else:
            target = sg(model(end_state, c, s + h, 0.0))
        total = total + jnp.mean((speed - target) ** 2)
    return total / x1.shape[0]


def ref_mean_flow(model, data, key, *, sampler, power=0.0, offset=1e-3):
    """`u` against `sg[v + d (J_x u v + du/dt - du/dd)]` with explicit partials."""
    y, x1, x0, t, d = _flow_inputs(data, key, 1, sampler.sample)
    x_t = _per_sample(t, x1) * x1 + (1 - _per_sample(t, x1)) * x0
    total = 0.0
    for i in range(x1.shape[0]):
        x, c, s, h, v = x_t[i], y[i], t[i], d[i], x1[i] - x0[i]
        f = lambda xx, ss, hh: model(xx, c, ss, hh)  # noqa: E731
        jacobian = _partial(f, 0)(x, s, h)
        # Contract the Jacobian's input axes with v: a matrix product for ODE states,
        # the same over all of `(C, *spatial)` for fields.
        total_derivative = (
            jnp.tensordot(jacobian, v, axes=v.ndim)
            + _partial(f, 1)(x, s, h)
            - _partial(f, 2)(x, s, h)
        )
        target = sg(v + h * total_derivative)
        error = jnp.mean((f(x, s, h) - target) ** 2)
        weight = sg((error + offset) ** (-power)) if power > 0 else 1.0
        total = total + weight * error
    return total / x1.shape[0]


def ref_shortcut_model(stepper, data, key, *, max_level, bootstrap_share, ema=False):
    """Flow matching at d = 0 on the first samples; `s(x, t, 2d)` against the mean of
    two frozen `d` steps (at the finest level with step-size input 0) on the others."""
    from trainax_fm.configuration import DyadicTimeSampler, UniformTimeSampler

    model = stepper.velocity if ema else stepper
    target_model = stepper.ema if ema else stepper
    x1 = data[:, 1]
    y = data[:, 0]
    batch = x1.shape[0]
    num_bootstrap = int(round(bootstrap_share * batch))
    key_noise, key_fm, key_bootstrap = jax.random.split(key, 3)
    x0 = jax.random.normal(key_noise, x1.shape)
    t_fm, _ = UniformTimeSampler().sample(key_fm, batch - num_bootstrap)
    t_b, big = DyadicTimeSampler(max_level=max_level - 1).sample(key_bootstrap, num_bootstrap)
    total = 0.0
    for i in range(batch):
        bootstrap = i >= batch - num_bootstrap
        s = t_b[i - (batch - num_bootstrap)] if bootstrap else t_fm[i]
        x = s * x1[i] + (1 - s) * x0[i]
        if not bootstrap:
            error = jnp.mean((model(x, y[i], s, 0.0) - (x1[i] - x0[i])) ** 2)
        else:
            step = big[i - (batch - num_bootstrap)]
            half = step / 2
            query = jnp.where(half == 2.0**-max_level, 0.0, half)
            first = target_model(x, y[i], s, query)
            second = target_model(x + half * first, y[i], s + half, query)
            target = sg(0.5 * (first + second))
            error = jnp.mean((model(x, y[i], s, step) - target) ** 2)
        total = total + error
    return total / batch


def ref_fair_crps(members, observation, alpha=1.0):
    """The almost-fair CRPS (fair for `alpha = 1`) of `members` `(M, ...)` against
    `observation`, averaged over entries, with the double sum over member pairs written
    out: `1/M sum_i |x_i - y| - (1 - (1 - alpha)/M) / (2 M (M - 1)) sum_{i,j} |x_i - x_j|`."""
    M = len(members)
    skill = sum(jnp.abs(x - observation) for x in members) / M
    pairs = sum(jnp.abs(members[i] - members[j]) for i in range(M) for j in range(M))
    epsilon = (1.0 - alpha) / M
    return jnp.mean(skill - (1.0 - epsilon) * pairs / (2 * M * (M - 1)))


def ref_crps_ensemble(stepper, data, key, R, M, w, alpha=1.0):
    """CRPSEnsemble: member m draws `split(key, M)[m]`, its step t
    `split(member_key, R)[t]`, its window b at that step `split(step_key, B)[b]`."""
    B = data.shape[0]
    members = []
    for member_key in jax.random.split(key, M):
        state, trajectory = data[:, 0], []
        for step_key in jax.random.split(member_key, R):
            sample_keys = jax.random.split(step_key, B)
            state = jnp.stack([stepper(state[b], key=sample_keys[b]) for b in range(B)])
            trajectory.append(state)
        members.append(trajectory)
    return sum(
        w[t] * ref_fair_crps([members[m][t] for m in range(M)], data[:, 1 + t], alpha)
        for t in range(R)
    )


# --- thermalizer: DDPM epsilon loss + noise-level cross-entropy ----------------------


def ref_cosine_alpha_bars(num_levels):
    """`1, ᾱ_1 ... ᾱ_K` of the cosine schedule, in float64 NumPy (betas clipped at 0.999)."""
    s = 0.008
    f = np.cos((np.arange(num_levels + 1) / num_levels + s) / (1 + s) * np.pi / 2) ** 2
    betas = np.minimum(1 - f[1:] / f[:-1], 0.999)
    return np.concatenate([[1.0], np.cumprod(1 - betas)])


def ref_thermalizer(thermalizer, data, key, num_levels, noise_level_weight):
    """Noise the first state of every window at a level `k ~ U{1..K}`; MSE of the
    denoiser's noise (its input `[x_k, k/K]` built here) plus the weighted
    cross-entropy of the classifier's logits (averaged over any spatial axes)."""
    level_key, noise_key = jax.random.split(key)
    x0 = data[:, 0]
    levels = jax.random.randint(level_key, (x0.shape[0],), 1, num_levels + 1)
    noise = jax.random.normal(noise_key, x0.shape, x0.dtype)
    alpha_bars = jnp.asarray(ref_cosine_alpha_bars(num_levels), x0.dtype)
    noise_errors, cross_entropies = [], []
    for b in range(x0.shape[0]):
        a = alpha_bars[levels[b]]
        noisy = jnp.sqrt(a) * x0[b] + jnp.sqrt(1 - a) * noise[b]
        level_channel = jnp.full((1,) + noisy.shape[1:], levels[b] / num_levels, x0.dtype)
        predicted = thermalizer.denoiser(jnp.concatenate([noisy, level_channel]))
        noise_errors.append(jnp.mean((predicted - noise[b]) ** 2))
        logits = thermalizer.classifier(noisy).reshape(num_levels, -1).mean(axis=1)
        log_p = logits - jax.scipy.special.logsumexp(logits)
        cross_entropies.append(-log_p[levels[b] - 1])
    return jnp.mean(jnp.stack(noise_errors)) + noise_level_weight * jnp.mean(
        jnp.stack(cross_entropies)
    )
def ref_stochastic_interpolant(
    model, data, key, noise_scale=1.0, quadratic=True, num_input_steps=1
):
    """MSE between the drift `b(I_s, y, s)` and `dI/ds` of the interpolant
    `I_s = (1 - s) x0 + beta(s) x1 + eps (1 - s) sqrt(s) z` from the current state `x0`
    (the last input state) to `x1`, `beta(s) = s^2` (or `s`), `s ~ U[0, 1]`.

    `model` is the trained velocity or a stepper holding it in `.velocity`. Same
    random draws as the configuration: `z` from the first half of `key`, `s` from the
    second half of the second half (as in `ref_flow_matching`).
    """
    velocity = getattr(model, "velocity", model)
    H = num_input_steps
    key_noise, key_time = jax.random.split(key)
    x1 = data[:, H]
    x0 = data[:, H - 1]
    history = data[:, :H]
    y = history.reshape(history.shape[0], -1, *history.shape[3:])
    z = jax.random.normal(key_noise, x1.shape)
    s = jax.random.uniform(jax.random.split(key_time)[1], (x1.shape[0],))
    sb = _per_sample(s, x1)
    beta, beta_dot = (sb**2, 2 * sb) if quadratic else (sb, jnp.ones_like(sb))
    interpolant = (1 - sb) * x0 + beta * x1 + noise_scale * (1 - sb) * jnp.sqrt(sb) * z
    target = -x0 + beta_dot * x1 - noise_scale * jnp.sqrt(sb) * z
    prediction = jax.vmap(velocity)(interpolant, y, s)
    return jnp.mean(_per_sample_mse(prediction, target))


def ref_pde_refiner(model, data, key, K, min_noise_std, H=1):
    """PDE-Refiner's loss, sample by sample: with `k ~ randint(first half of key, 0..K)`
    and noise `xi` from the second half, sample `b` scores
    `|model(0, y_b, 0) - u_b|^2` for `k_b = 0` and
    `|model(u_b + s xi_b, y_b, k_b / K) - xi_b|^2`, `s = min_noise_std ** (k_b / K)`,
    otherwise (mean over entries, then over samples). Both branches are evaluated and
    one is selected, so that the reference also runs under `jit`."""
    B = data.shape[0]
    target = data[:, H]
    y = data[:, :H].reshape(B, -1, *data.shape[3:])
    if K == 0:
        k, noise = jnp.zeros((B,), jnp.int32), jnp.zeros_like(target)
    else:
        key_step, key_noise = jax.random.split(key)
        k = jax.random.randint(key_step, (B,), 0, K + 1)
        noise = jax.random.normal(key_noise, target.shape)
    total = 0.0
    for b in range(B):
        predict = model(jnp.zeros_like(target[b]), y[b], 0.0)
        predict_error = jnp.mean((predict - target[b]) ** 2)
        level = k[b] / max(K, 1)
        s = min_noise_std**level
        denoise = model(target[b] + s * noise[b], y[b], level)
        denoise_error = jnp.mean((denoise - noise[b]) ** 2)
        total = total + jnp.where(k[b] == 0, predict_error, denoise_error)
    return total / B
