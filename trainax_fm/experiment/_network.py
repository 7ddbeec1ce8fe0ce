"""The network grammar: one short string names an emulator architecture.

Fields are separated by `;`. Counts are positive integers (a depth may be 0), the
last field is the activation (`relu`, `gelu`, `tanh`, `silu`, `elu`, `sigmoid`,
`softplus`, `leaky_relu`, `identity`).

| spec | network | states |
| --- | --- | --- |
| `Conv;WIDTH;DEPTH;ACT` | built-in periodic ConvNet: kernel 3, `DEPTH` hidden layers of `WIDTH` channels (`DEPTH=0`: one linear convolution) | fields `(C, *spatial)`, 1-3D |
| `MLP;WIDTH;DEPTH;ACT` | built-in `eqx.nn.MLP` with `DEPTH` hidden layers of `WIDTH` | ODE states `(C,)` |
| `FNO;MODES;WIDTH;BLOCKS;ACT` | `pdequinox.arch.ClassicFNO` | fields |
| `UNet;WIDTH;LEVELS;ACT` | `pdequinox.arch.ClassicUNet` (periodic) | fields, resolution divisible by `2**LEVELS` |
| `Res;WIDTH;BLOCKS;ACT` | `pdequinox.arch.ClassicResNet` (periodic) | fields |

`FNO`, `UNet` and `Res` need pdequinox (`pip install 'trainax_fm[pde]'`).
"""  # noqa: E501  (markdown table rows cannot be wrapped)

import dataclasses
import difflib
from typing import Callable

import equinox as eqx
import jax
import jax.numpy as jnp

from .._stepper._trainable import trainable_arrays
from ._errors import ConfigError

ACTIVATIONS: dict[str, Callable] = {
    "relu": jax.nn.relu,
    "gelu": jax.nn.gelu,
    "tanh": jnp.tanh,
    "silu": jax.nn.silu,
    "elu": jax.nn.elu,
    "sigmoid": jax.nn.sigmoid,
    "softplus": jax.nn.softplus,
    "leaky_relu": jax.nn.leaky_relu,
    "identity": lambda x: x,
}

# kind -> (names of the integer fields, smallest allowed value of each)
_FIELDS = {
    "Conv": (("WIDTH", 1), ("DEPTH", 0)),
    "MLP": (("WIDTH", 1), ("DEPTH", 0)),
    "FNO": (("MODES", 1), ("WIDTH", 1), ("BLOCKS", 1)),
    "UNet": (("WIDTH", 1), ("LEVELS", 1)),
    "Res": (("WIDTH", 1), ("BLOCKS", 1)),
}
_PDEQUINOX = ("FNO", "UNet", "Res")


def _usage(kind: str) -> str:
    return ";".join([kind] + [name for name, _ in _FIELDS[kind]] + ["ACT"])


@dataclasses.dataclass(frozen=True)
class NetworkSpec:
    """A parsed network spec (grammar in the module docstring).

    **Arguments:**

    - `kind`: `Conv`, `MLP`, `FNO`, `UNet` or `Res`.
    - `sizes`: the integer fields in the order of the grammar.
    - `activation`: the activation name.
    """

    kind: str
    sizes: tuple[int, ...]
    activation: str


def parse_network(spec: str, field: str = "network.spec") -> NetworkSpec:
    """Parse a network spec such as `"Conv;26;10;relu"`.

    **Raises:**

    - `ConfigError` naming `field` for an unknown architecture or activation, a wrong
        number of fields or a non-integer size.
    """
    if not isinstance(spec, str):
        raise ConfigError(field, "a network string such as 'Conv;26;10;relu'", repr(spec))
    parts = spec.split(";")
    kind = parts[0]
    if kind not in _FIELDS:
        close = difflib.get_close_matches(kind, list(_FIELDS), n=1)
        raise ConfigError(
            field,
            "a network starting with one of " + ", ".join(_FIELDS),
            repr(spec),
            (f"did you mean {close[0]!r}? " if close else "")
            + "valid forms: " + "; ".join(repr(_usage(k)) for k in _FIELDS),
        )
    fields = _FIELDS[kind]
    if len(parts) != len(fields) + 2:
        raise ConfigError(
            field,
            f"{len(fields) + 1} fields after {kind!r} (form {_usage(kind)!r})",
            f"{repr(spec)} with {len(parts) - 1}",
            f"write it as {_usage(kind)!r}",
        )
    sizes = []
    for (name, minimum), token in zip(fields, parts[1:-1]):
        if not token.isdigit() or not token.isascii() or int(token) < minimum:
            raise ConfigError(
                field,
                f"{name} to be an integer >= {minimum} (form {_usage(kind)!r})",
                f"{token!r} in {spec!r}",
                f"write {name} as a whole number",
            )
        sizes.append(int(token))
    activation = parts[-1]
    if activation not in ACTIVATIONS:
        close = difflib.get_close_matches(activation, list(ACTIVATIONS), n=1)
        raise ConfigError(
            field,
            "an activation in " + ", ".join(ACTIVATIONS),
            f"{activation!r} in {spec!r}",
            f"use {close[0]!r}" if close else "pick one of the listed activations",
        )
    return NetworkSpec(kind, tuple(sizes), activation)


def format_network(spec: NetworkSpec) -> str:
    """The canonical spec string; `parse_network(format_network(s)) == s`."""
    return ";".join([spec.kind] + [str(s) for s in spec.sizes] + [spec.activation])


class ConvNet(eqx.Module):
    """A plain periodic convolutional network (the built-in `Conv` architecture).

    `depth + 1` convolutions of kernel size 3 with circular padding: `in -> width`,
    `depth - 1` times `width -> width`, then `width -> out`, with the activation
    between them (none after the last). `depth = 0` is one linear convolution
    `in -> out`.

    **Arguments:**

    - `num_spatial_dims`: 1, 2 or 3.
    - `in_channels`, `out_channels`: channel counts.
    - `width`: hidden channels.
    - `depth`: number of hidden layers.
    - `activation`: the activation function.
    - `key`: a JAX random key.
    """

    layers: tuple
    activation: Callable = eqx.field(static=True)

    def __init__(
        self,
        num_spatial_dims: int,
        in_channels: int,
        out_channels: int,
        width: int,
        depth: int,
        activation: Callable,
        *,
        key,
    ):
        sizes = [in_channels] + [width] * depth + [out_channels]
        keys = jax.random.split(key, len(sizes) - 1)
        self.layers = tuple(
            eqx.nn.Conv(
                num_spatial_dims,
                c_in,
                c_out,
                kernel_size=3,
                padding=1,
                padding_mode="CIRCULAR",
                key=k,
            )
            for c_in, c_out, k in zip(sizes[:-1], sizes[1:], keys)
        )
        self.activation = activation

    def __call__(self, x):
        for layer in self.layers[:-1]:
            x = self.activation(layer(x))
        return self.layers[-1](x)


def _require_pdequinox(spec: str, field: str):
    try:
        import pdequinox
    except ImportError:
        raise ConfigError(
            field,
            "an installed pdequinox for this architecture",
            f"{spec!r} but pdequinox is not installed",
            "pip install 'trainax_fm[pde]' (or use the built-in 'Conv;WIDTH;DEPTH;ACT')",
        ) from None
    return pdequinox


def build_network(
    spec: str,
    *,
    in_channels: int,
    out_channels: int,
    num_spatial_dims: int,
    num_points: int,
    key,
    field: str = "network.spec",
) -> eqx.Module:
    """Build the network named by `spec`.

    **Arguments:**

    - `spec`: the network spec (grammar in the module docstring).
    - `in_channels`, `out_channels`: channels (features for an MLP) in and out.
    - `num_spatial_dims`: 0 for ODE states `(C,)`, else 1-3.
    - `num_points`: points per spatial axis (checked against UNet levels and FNO
        modes).
    - `key`: a JAX random key for the initialisation.
    - `field`: the configuration path named in errors.

    **Returns:**

    - An `eqx.Module` mapping one state to one state.
    """
    parsed = parse_network(spec, field)
    activation = ACTIVATIONS[parsed.activation]
    kind, sizes = parsed.kind, parsed.sizes
    if num_spatial_dims == 0 and kind != "MLP":
        raise ConfigError(
            field,
            "an 'MLP;WIDTH;DEPTH;ACT' network for ODE states of shape (C,)",
            repr(spec),
            "use e.g. spec = \"MLP;64;3;tanh\"",
        )
    if num_spatial_dims > 0 and kind == "MLP":
        raise ConfigError(
            field,
            f"a field architecture (Conv, FNO, UNet, Res) for {num_spatial_dims}D states",
            repr(spec),
            "MLP is for ODE states (C,); use e.g. spec = \"Conv;26;10;relu\"",
        )
    if kind == "MLP":
        return eqx.nn.MLP(
            in_channels, out_channels, sizes[0], sizes[1], activation=activation, key=key
        )
    if kind == "Conv":
        return ConvNet(
            num_spatial_dims, in_channels, out_channels, sizes[0], sizes[1], activation,
            key=key,
        )
    pdequinox = _require_pdequinox(spec, field)
    if kind == "FNO":
        modes, width, blocks = sizes
        if modes > num_points // 2 + 1:
            raise ConfigError(
                field,
                f"MODES <= {num_points // 2 + 1} (num_points // 2 + 1 at {num_points} points)",
                f"{modes} in {spec!r}",
                "lower MODES or raise the resolution",
            )
        return pdequinox.arch.ClassicFNO(
            num_spatial_dims, in_channels, out_channels, hidden_channels=width,
            num_modes=modes, num_blocks=blocks, activation=activation, key=key,
        )
    if kind == "UNet":
        width, levels = sizes
        if num_points % (2**levels) != 0:
            raise ConfigError(
                field,
                f"a resolution divisible by 2**LEVELS = {2**levels}",
                f"{num_points} points with LEVELS={levels} in {spec!r}",
                "lower LEVELS or pick a resolution that is a multiple of 2**LEVELS",
            )
        return pdequinox.arch.ClassicUNet(
            num_spatial_dims, in_channels, out_channels, hidden_channels=width,
            num_levels=levels, activation=activation, boundary_mode="periodic", key=key,
        )
    width, blocks = sizes
    return pdequinox.arch.ClassicResNet(
        num_spatial_dims, in_channels, out_channels, hidden_channels=width,
        num_blocks=blocks, activation=activation, boundary_mode="periodic", key=key,
    )


def count_parameters(module) -> int:
    """Number of trainable parameters (array entries) of a module."""
    leaves = jax.tree_util.tree_leaves(trainable_arrays(module))
    return int(sum(leaf.size for leaf in leaves))
