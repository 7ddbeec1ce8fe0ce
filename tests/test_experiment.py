"""Experiment runner: method/network grammar, config validation, data loading, TOML."""

from pathlib import Path

import equinox as eqx
import jax
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import trainax_fm as tx
from trainax_fm.experiment import (
    ConfigError,
    TrainMethod,
    canonical_method,
    format_method,
    format_network,
    load_config,
    parse_method,
    parse_network,
    validate_config,
)
from trainax_fm.experiment import _method_spec as grammar
from trainax_fm.experiment import _toml
from trainax_fm.experiment._method import KINDS, METHODS
from trainax_fm.experiment._method_spec import methods_table

# --- method grammar -------------------------------------------------------------------

FLAG = st.sampled_from(["true", "false", "True", "False"])
COUNT = st.integers(1, 400).map(str) | st.integers(1, 99).map(lambda n: f"0{n}")
PROBABILITY = st.sampled_from(["0", "1", "0.5", "1.0", "0.25", "0.", ".75", "1e-1"])


@st.composite
def schedules(draw):
    if draw(st.booleans()):
        return draw(PROBABILITY)
    steps = sorted(draw(st.sets(st.integers(0, 5000), min_size=1, max_size=4)))
    return ",".join(f"{s}:{draw(PROBABILITY)}" for s in steps)


@st.composite
def method_specs(draw):
    kind = draw(st.sampled_from(KINDS))  # every row of the table, a new one included
    if kind == "one":
        return "one"
    if kind == "cur":
        longest = draw(st.integers(1, 8))
        steps = sorted(draw(st.sets(st.integers(0, 5000), min_size=1, max_size=4)))
        lengths = ",".join(f"{s}:{draw(st.integers(1, longest))}" for s in steps)
        return ";".join(["cur", str(longest), lengths] + draw(st.lists(FLAG, max_size=1)))
    if kind in ("mmd", "sinkhorn"):
        return ";".join([kind, draw(COUNT), draw(st.sampled_from(["0.1", "1", "1e-2", ".5"]))])
    if METHODS[kind].few_step:
        steps = str(2 ** draw(st.integers(0, 5)))
        teacher = [draw(st.sampled_from(["results/fm", "../runs/teacher 1"]))]
        if not METHODS[kind].fields[1].required and draw(st.booleans()):
            teacher = []
        return ";".join([kind, steps] + teacher)
    if kind == "fm":
        parts = ["fm", draw(COUNT)]
        if draw(st.booleans()):
            parts.append(draw(st.sampled_from(["euler", "midpoint", "heun"])))
        return ";".join(parts)
    if kind == "si":
        parts = ["si", draw(COUNT)]
        if draw(st.booleans()):
            parts.append(draw(st.sampled_from(["0", "0.5", "1.0", "2", "1e-1", "follmer"])))
        return ";".join(parts)
    if kind == "crps":
        members = str(draw(st.integers(2, 64)))
        return ";".join(["crps", members] + draw(st.lists(COUNT, max_size=1)))
    if kind == "refiner":
        noise = draw(st.lists(st.sampled_from(["1e-3", "0.01", ".5", "2E-7"]), max_size=1))
        return ";".join(["refiner", draw(COUNT)] + noise)
    if kind == "therm":
        levels = draw(st.integers(2, 2000))
        threshold = draw(st.lists(st.integers(0, levels - 1).map(str), max_size=1))
        folder = draw(st.sampled_from(["results/one", "../runs/emulator 1"]))
        return ";".join(["therm", str(levels), folder] + threshold)
    if kind == "gtf":
        tail = draw(st.lists(st.none(), max_size=2))  # how many optional fields follow
        parts = ["gtf", draw(COUNT), draw(schedules())]
        return ";".join(parts + [draw(COUNT), draw(FLAG)][: len(tail)])
    head = {"sup": [], "div": [], "res": [], "mix": [draw(COUNT)], "tf": [draw(schedules())],
            "pf": [draw(COUNT)]}[kind]
    max_flags = {"sup": 1, "div": 2, "res": 3, "mix": 1, "tf": 1, "pf": 2}[kind]
    flags = draw(st.lists(FLAG, max_size=max_flags))
    return ";".join([kind, draw(COUNT)] + head + flags)


@settings(max_examples=150, deadline=None)
@given(method_specs())
def test_method_round_trip(spec):
    method = parse_method(spec)
    canonical = format_method(method)
    assert canonical == canonical_method(spec)
    assert parse_method(canonical) == method  # same meaning
    assert format_method(parse_method(canonical)) == canonical  # canonical is a fixed point


def test_methods_table_is_the_documented_one():
    """The CLI guide and the grammar's docstring show the table `METHODS` writes."""
    guide = Path(__file__).parents[1] / "docs" / "how-to" / "cli.md"
    assert methods_table() in guide.read_text()
    assert methods_table() in grammar.__doc__


@pytest.mark.parametrize(
    "spec, expected",
    [
        ("one", TrainMethod("one")),
        ("sup;5", TrainMethod("sup", 5)),
        ("sup;5;True", TrainMethod("sup", 5, cut_bptt=True)),
        ("div;3;false;true", TrainMethod("div", 3, cut_div_chain=True)),
        ("mix;2;3", TrainMethod("mix", 2, num_post_physics_steps=3)),
        ("res;4;false;true", TrainMethod("res", 4, cut_prev=True)),
        ("tf;3;0.5", TrainMethod("tf", 3, teacher_forcing=0.5)),
        ("tf;3;10:1.0,20:0.5", TrainMethod("tf", 3, teacher_forcing=((10, 20), (1.0, 0.5)))),
        ("pf;2;3", TrainMethod("pf", 2, num_pushforward_steps=3)),
        ("pf;1;4;true", TrainMethod("pf", 1, num_pushforward_steps=4, random_pushforward=True)),
        ("pf;1;4;false;true", TrainMethod("pf", 1, cut_bptt=True, num_pushforward_steps=4)),
        ("cur;4;10:1,20:4", TrainMethod("cur", 4, rollout_lengths=((10, 20), (1, 4)))),
        ("cur;2;5:1;true", TrainMethod("cur", 2, cut_bptt=True, rollout_lengths=((5,), (1,)))),
        ("mmd;8;0.1", TrainMethod("mmd", 8, mmd_weight=0.1)),
        ("sinkhorn;4;2", TrainMethod("sinkhorn", 4, mmd_weight=2.0)),
        ("fm;4;heun", TrainMethod("fm", num_sampling_steps=4, solver="heun")),
        ("refiner;3", TrainMethod("refiner", num_refinement_steps=3)),
        ("refiner;2;0.01", TrainMethod("refiner", num_refinement_steps=2, min_noise_std=0.01)),
        ("lsd;2", TrainMethod("lsd", num_sampling_steps=2)),
        ("lsd;1;runs/fm", TrainMethod("lsd", num_sampling_steps=1, teacher="runs/fm")),
        ("meanflow;1", TrainMethod("meanflow", num_sampling_steps=1)),
        ("shortcut;4;a/b", TrainMethod("shortcut", num_sampling_steps=4, teacher="a/b")),
        ("sg;2;t", TrainMethod("sg", num_sampling_steps=2, teacher="t")),
        ("pd;4;runs/fm8", TrainMethod("pd", num_sampling_steps=4, teacher="runs/fm8")),
        ("shortcut;2;ema=0.99", TrainMethod("shortcut", num_sampling_steps=2, ema_decay=0.99)),
        ("shortcut;1;a/b;ema=.5",
         TrainMethod("shortcut", num_sampling_steps=1, teacher="a/b", ema_decay=0.5)),
        ("therm;100;runs/one", TrainMethod("therm", num_noise_steps=100, teacher="runs/one")),
        ("therm;10;a b;0", TrainMethod("therm", num_noise_steps=10, teacher="a b", threshold=0)),
    ],
)
def test_method_meaning(spec, expected):
    assert parse_method(spec) == expected


@pytest.mark.parametrize(
    "spec, canonical",
    [("sup;5;False", "sup;5"), ("sup;05;True", "sup;5;true"),
     ("div;5;false;false", "div;5"), ("div;5;False;True", "div;5;false;true"),
     ("tf;2;1", "tf;2;1.0"), ("fm;8;euler", "fm;8"), ("pf;1;3;False;false", "pf;1;3"),
     ("pf;01;3;false;True", "pf;1;3;false;true"), ("cur;4;010:01,20:4;false", "cur;4;10:1,20:4"),
     ("mmd;8;1", "mmd;8;1.0"), ("mmd;8;1e-1", "mmd;8;0.1"), ("sinkhorn;08;.5", "sinkhorn;8;0.5"),
     ("refiner;3;1e-3", "refiner;3"), ("refiner;03;2E-2", "refiner;3;0.02"),
     ("pd;02;t", "pd;2;t"), ("therm;0100;e;007", "therm;100;e;7"), ("therm;10;e", "therm;10;e"),
     ("shortcut;4;t;ema=.9", "shortcut;4;t;ema=0.9"), ("shortcut;1;ema=0", "shortcut;1;ema=0.0")],
)
def test_method_canonical(spec, canonical):
    assert canonical_method(spec) == canonical


@pytest.mark.parametrize(
    "spec, words",
    [
        ("sup", "field(s) after 'sup'"),
        ("sup;0", "positive integer"),
        ("sup;x", "positive integer"),
        ("sup;5;yes", "true, false"),
        ("sup;5;1", "true, false"),
        ("sup;5;TRUE", "true, false"),
        ("sup;5;true;true", "field(s) after 'sup'"),
        ("one;1", "field(s) after 'one'"),
        ("Sup;5", "did you mean 'sup'"),
        ("bogus;5", "one of one, sup"),
        ("div;5;true;false;true", "field(s)"),
        ("mix;5", "field(s)"),
        ("tf;3;1.5", "probability"),
        ("tf;3;20:1.0,10:0.5", "increasing"),
        ("tf;3;a:1.0", "whole-number step"),
        ("pf;1", "field(s) after 'pf'"),
        ("pf;1;0", "positive integer"),
        ("pf;1;2;yes", "true, false"),
        ("pf;1;2;true;true;true", "field(s) after 'pf'"),
        ("cur;4;10:5", "lengths in 1 ... 4"),
        ("cur;4;10:0", "lengths in 1 ... 4"),
        ("cur;4;10:1.5", "lengths in 1 ... 4"),
        ("cur;4;20:1,10:2", "increasing"),
        ("cur;4;a:1", "`step:length` with a whole-number step"),
        ("cur;4;0.5", "whole-number step"),
        ("mmd;8", "field(s) after 'mmd'"),
        ("mmd;8;0", "positive number WEIGHT"),
        ("mmd;8;-1", "positive number WEIGHT"),
        ("mmd;0;0.1", "positive integer"),
        ("sinkhorn;8", "field(s) after 'sinkhorn'"),
        ("sinkhorn;8;0", "write it like 'sinkhorn;8;0.1'"),
        ("fm;4;rk4", "solver"),
        ("refiner", "field(s) after 'refiner'"),
        ("refiner;0", "positive integer"),
        ("refiner;2;1", "noise level MIN_NOISE_STD in (0, 1)"),
        ("refiner;2;0", "noise level MIN_NOISE_STD in (0, 1)"),
        ("refiner;2;-0.1", "noise level MIN_NOISE_STD in (0, 1)"),
        ("refiner;2;0.1;x", "field(s) after 'refiner'"),
        ("sg;2", "field(s) after 'sg'"),
        ("lsd;2;a;b", "field(s) after 'lsd'"),
        ("lsd;0", "positive integer"),
        ("shortcut;3", "power of two"),
        ("meanflow;1; ", "results folder"),
        ("pd;2", "field(s) after 'pd'"),
        ("pd;0;t", "positive integer"),
        ("shortcut;2;ema=1.0", "EMA decay in [0, 1)"),
        ("shortcut;2;ema=x", "EMA decay in [0, 1)"),
        ("shortcut;2;a;b", "at most one `ema=DECAY`"),
        ("lsd;1;ema=0.9", "option of shortcut models only"),
        ("therm", "field(s) after 'therm'"),
        ("therm;100", "field(s) after 'therm'"),
        ("therm;0;e", "positive integer"),
        ("therm;1;e", "at least 2 noise levels K"),
        ("therm;100; ;5", "results folder of a finished emulator run"),
        ("therm;100;e;-1", "`THRESHOLD` to be a whole number >= 0"),
        ("therm;100;e;1.5", "`THRESHOLD` to be a whole number >= 0"),
        ("therm;10;e;10", "THRESHOLD below the K=10 noise levels"),
        ("therm;10;e;1;x", "field(s) after 'therm'"),
        ("sup; 5", "positive integer"),
        ("", "one of one, sup"),
    ],
)
def test_method_rejects(spec, words):
    with pytest.raises(ConfigError, match="training.method") as info:
        parse_method(spec)
    assert words in str(info.value)


def test_pd_configuration_needs_the_loaded_teacher():
    method = parse_method("pd;2;t")
    assert method.required_window_length == 2
    with pytest.raises(ValueError, match="teacher_method"):
        method.configuration()
    teacher = tx.flow.ConditionalVelocity(eqx.nn.MLP(7, 3, 4, 1, key=jax.random.key(0)))
    configuration = method.configuration(teacher, parse_method("fm;8;heun"))
    assert configuration.num_fine_steps == 4 and configuration.teacher_solver.name == "heun"
    with pytest.raises(ConfigError, match="divides"):
        method.configuration(teacher, parse_method("fm;3"))


def test_the_thermalizer_threshold_defaults_to_a_tenth_of_the_levels():
    assert parse_method("therm;100;e").thermalizer_threshold == 10
    assert parse_method("therm;9;e").thermalizer_threshold == 0
    assert parse_method("therm;100;e;3").thermalizer_threshold == 3
    assert eqx.tree_equal(parse_method("therm;5;e").configuration(),
                          tx.configuration.ThermalizerDiffusion())
    assert parse_method("therm;5;e").required_window_length == 1


def test_every_method_builds_its_configuration():
    for spec in ["one", "sup;3;true", "div;2", "mix;2;1", "res;2", "tf;2;5:1.0,9:0.0",
                 "gtf;3;0.5;2", "gtf;2;5:0.9,9:0.0", "pf;1;2",
                 "cur;3;5:1,9:3", "mmd;4;0.5", "sinkhorn;2;1", "crps;3;2", "refiner;2",
                 "fm;2", "si;4;0.5", "lsd;1", "meanflow;2", "shortcut;4",
                 "sg;2;t"]:
        configuration = parse_method(spec).configuration()
        assert isinstance(configuration, tx.configuration.BaseConfiguration)


@pytest.mark.parametrize(
    "spec, expected",
    [
        ("pf;2;3;true;true", tx.configuration.Pushforward(
            2, num_pushforward_steps=3, random_pushforward=True, cut_bptt=True)),
        ("cur;4;10:1,20:2,30:4", tx.configuration.RolloutCurriculum(
            tx.configuration.Supervised(4), "10:1,20:2,30:4")),
        ("mmd;8;0.25", tx.configuration.Composite(
            [tx.configuration.Supervised(1), tx.configuration.InvariantMeasureMMD(8)],
            [1.0, 0.25])),
        ("sinkhorn;3;0.5", tx.configuration.Composite(
            [tx.configuration.Supervised(1), tx.configuration.InvariantMeasureSinkhorn(3)],
            [1.0, 0.5])),
    ],
)
def test_stability_methods_build_the_documented_configuration(spec, expected):
    assert eqx.tree_equal(parse_method(spec).configuration(), expected)


# --- network grammar --------------------------------------------------------------------


@pytest.mark.parametrize("spec", ["Conv;26;10;relu", "MLP;64;3;tanh", "FNO;12;8;4;gelu",
                                  "UNet;8;2;relu", "Res;8;2;silu", "Conv;4;0;identity"])
def test_network_round_trip(spec):
    assert format_network(parse_network(spec)) == spec


@pytest.mark.parametrize("spec, words", [("Conv;26;relu", "3 fields"), ("Cnv;2;2;relu", "'Conv'"),
                                         ("Conv;2;2;rleu", "'relu'"), ("Conv;a;2;relu", "WIDTH"),
                                         ("MLP;0;2;relu", "WIDTH")])
def test_network_rejects(spec, words):
    with pytest.raises(ConfigError, match="network.spec") as info:
        parse_network(spec)
    assert words in str(info.value)


def test_networks_build_and_map_states():
    import equinox as eqx
    import jax

    key = jax.random.PRNGKey(0)
    for spec, shape in [("Conv;3;2;relu", (2, 16)), ("Conv;3;1;gelu", (1, 8, 8)),
                        ("FNO;4;4;1;gelu", (1, 16)), ("UNet;4;2;relu", (1, 16)),
                        ("Res;4;1;relu", (1, 16)), ("MLP;8;2;tanh", (3,))]:
        # Abstract evaluation only: shapes are what matters and it costs no compile.
        net = eqx.filter_eval_shape(
            tx.experiment.build_network, spec, in_channels=shape[0], out_channels=shape[0],
            num_spatial_dims=len(shape) - 1, num_points=shape[-1] if len(shape) > 1 else 0,
            key=key)
        out = eqx.filter_eval_shape(lambda m, x: m(x), net, jax.ShapeDtypeStruct(shape, "float32"))
        assert out.shape == shape
    with pytest.raises(ConfigError, match="divisible by 2\\*\\*LEVELS"):
        tx.experiment.build_network("UNet;4;3;relu", in_channels=1, out_channels=1,
                                    num_spatial_dims=1, num_points=12, key=key)
    with pytest.raises(ConfigError, match="MLP"):
        tx.experiment.build_network("Conv;4;3;relu", in_channels=3, out_channels=3,
                                    num_spatial_dims=0, num_points=0, key=key)


# --- configuration ----------------------------------------------------------------------


def test_defaults_are_complete_and_round_trip_through_toml(tmp_path):
    for source in ["advection", "lorenz", "lorenz96", "exponax:ks_1d"]:
        config = tx.experiment.default_config(source, name="x")
        path = tmp_path / "c.toml"
        path.write_text(tx.experiment.config_to_toml(config))
        assert load_config(path) == config
    assert tx.experiment.default_config("lorenz")["network"]["spec"].startswith("MLP")


@pytest.mark.parametrize(
    "raw, field, words",
    [
        ({"training": {"batch_size": 0}}, "training.batch_size", "integer >= 1"),
        ({"training": {"batch_size": 2.0}}, "training.batch_size", "2.0 (float)"),
        ({"training": {"batch_size": True}}, "training.batch_size", "(boolean)"),
        ({"training": {"batchsize": 3}}, "training.batchsize", "did you mean 'batch_size'"),
        ({"training": {"learning_rate": 0}}, "training.learning_rate", "> 0.0"),
        ({"training": {"learning_rate": "1e-3"}}, "training.learning_rate", "a number"),
        ({"training": {"optimizer": "sgd"}}, "training.optimizer", "'adam'"),
        ({"training": {"lr_schedule": "cosin"}}, "training.lr_schedule", "did you mean 'cosine'"),
        ({"training": {"method": "sup;2;maybe"}}, "training.method", "true, false"),
        ({"training": {"warmup_steps": 10, "num_training_steps": 10}}, "training.warmup_steps", ""),
        ({"training": 3}, "training", "a [training] table"),
        ({"evaluation": {"correlation_threshold": 1.5}}, "evaluation.correlation_threshold", "]"),
        ({"evaluation": {"num_rollout_steps": 5, "nrmse_aggregate_steps": 6}},
         "evaluation.nrmse_aggregate_steps", "at most"),
        ({"data": {"source": "heat"}}, "data.source", "advection"),
        ({"data": {"source": "exponax:navier"}}, "data.source", "ks_1d"),
        (
            {"data": {"source": "lorenz", "num_points": 16}},
            "data.num_points", "for source 'lorenz'",
        ),
        ({"data": {"temporal_horizon": 3}, "training": {"method": "sup;5"}},
         "data.temporal_horizon", "at least 6"),
        ({"data": {"source": "file:x.npy"}, "training": {"method": "div;2"}}, "training.method",
         "reference"),
        ({"network": {"spec": "Conv;2;2"}}, "network.spec", "fields"),
        ({"name": "a/b"}, "name", "letters"),
        ({"num_seeds": 0}, "num_seeds", ">= 1"),
        ({"epochs": 3}, "epochs", "unknown key"),
    ],
)
def test_validation_names_the_field(raw, field, words):
    with pytest.raises(ConfigError) as info:
        validate_config(raw)
    assert info.value.path == field
    assert f"`{field}`" in str(info.value)
    error = info.value
    assert words in str(error)
    # The whole message: field, what was expected, what was found and a repair hint.
    assert error.expected and error.actual and error.fix
    assert str(error) == (
        f"`{field}`: expected {error.expected}, got {error.actual}. Fix: {error.fix}"
    )


def test_load_config_reports_file_and_syntax(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[training\nbatch_size = 2\n")
    with pytest.raises(ConfigError, match="valid TOML") as info:
        load_config(bad)
    assert str(bad) in str(info.value)
    typo = tmp_path / "typo.toml"
    typo.write_text("[training]\nbatch_size = -1\n")
    with pytest.raises(ConfigError, match="training.batch_size") as info:
        load_config(typo)
    assert str(typo) in str(info.value)


def test_toml_writer_round_trips_awkward_values():
    document = {"a": 'q"uote\\ \n\t\x7f é', "b": 1e-05, "c": -3, "d": True, "e": [1, 2],
                "t": {"x": 0.1, "key with space": "v", "n": None}, "z": None}
    text = _toml.dumps(document)
    assert _toml.loads(text) == {"a": document["a"], "b": 1e-05, "c": -3, "d": True,
                                 "e": [1, 2], "t": {"x": 0.1, "key with space": "v"}}


# --- data -------------------------------------------------------------------------------


def _file_config(path, **data):
    return validate_config({"data": {"source": f"file:{path}", **data},
                            "evaluation": {"num_rollout_steps": 3}})


def test_npy_and_npz_files(tmp_path):
    rng = np.random.default_rng(0)
    array = rng.normal(size=(10, 6, 1, 8)).astype(np.float32)
    np.save(tmp_path / "a.npy", array)
    np.savez(tmp_path / "b.npz", trajectories=array, other=np.zeros(3))
    np.savez(tmp_path / "c.npz", only=array)
    for name in ["a.npy", "b.npz", "c.npz"]:
        dataset, config = tx.experiment.load_data(_file_config(tmp_path / name))
        assert dataset.train.shape == (8, 6, 1, 8) and dataset.test.shape == (2, 4, 1, 8)
        assert config["data"]["num_train_samples"] == 8
        assert config["network"]["spec"].startswith("Conv")
    np.testing.assert_array_equal(dataset.test, array[8:, :4])
    # relative paths are resolved against the config file
    (tmp_path / "c.toml").write_text(
        '[data]\nsource = "file:a.npy"\n[evaluation]\nnum_rollout_steps = 2\n'
    )
    assert load_config(tmp_path / "c.toml")["data"]["source"] == f"file:{tmp_path / 'a.npy'}"
    # ODE data gets an MLP by default
    np.save(tmp_path / "ode.npy", rng.normal(size=(5, 6, 3)).astype(np.float32))
    _, config = tx.experiment.load_data(_file_config(tmp_path / "ode.npy"))
    assert config["network"]["spec"].startswith("MLP")


@pytest.mark.parametrize("shape", [(6, 8), (6,), (2, 3, 1, 4, 4, 4, 4)])
def test_files_with_wrong_rank_name_the_shape(tmp_path, shape):
    path = tmp_path / "bad.npy"
    np.save(path, np.zeros(shape, np.float32))
    with pytest.raises(ConfigError, match="data.source") as info:
        tx.experiment.load_data(_file_config(path))
    message = str(info.value)
    assert str(shape) in message and "bad.npy" in message and "(S, T, C, *spatial)" in message


def test_file_errors(tmp_path):
    np.savez(tmp_path / "two.npz", a=np.zeros((4, 5, 1, 8)), b=np.zeros((4, 5, 1, 8)))
    with pytest.raises(ConfigError, match="trajectories"):
        tx.experiment.load_data(_file_config(tmp_path / "two.npz"))
    with pytest.raises(ConfigError, match="not found"):
        tx.experiment.load_data(_file_config(tmp_path / "missing.npy"))
    np.save(tmp_path / "short.npy", np.zeros((4, 3, 1, 8), np.float32))
    with pytest.raises(ConfigError, match="evaluation.num_rollout_steps"):
        tx.experiment.load_data(_file_config(tmp_path / "short.npy"))
    np.save(tmp_path / "one.npy", np.zeros((1, 5, 1, 8), np.float32))
    with pytest.raises(ConfigError, match="data.test_source"):
        tx.experiment.load_data(_file_config(tmp_path / "one.npy"))
    np.save(tmp_path / "test.npy", np.zeros((2, 5, 2, 8), np.float32))
    with pytest.raises(ConfigError, match="state shape"):
        tx.experiment.load_data(
            _file_config(tmp_path / "one.npy", test_source=f"file:{tmp_path / 'test.npy'}"))


def test_generated_sources_and_references():
    import jax

    config = validate_config({"data": {"num_train_samples": 2, "num_test_samples": 2,
                                       "temporal_horizon": 4, "num_points": 16},
                              "evaluation": {"num_rollout_steps": 3}})
    dataset, _ = tx.experiment.load_data(config)
    assert dataset.train.shape == (2, 4, 1, 16) and dataset.test.shape == (2, 4, 1, 16)
    # the advection reference reproduces the data
    nxt = jax.vmap(dataset.ref_stepper)(dataset.train[:, 0])
    np.testing.assert_allclose(nxt, dataset.train[:, 1], atol=1e-5)
    config = validate_config({"data": {"source": "exponax:diffusion_1d", "num_train_samples": 2,
                                       "num_test_samples": 1, "temporal_horizon": 3,
                                       "num_points": 16},
                              "evaluation": {"num_rollout_steps": 2}})
    dataset, _ = tx.experiment.load_data(config)
    assert dataset.train.shape == (2, 3, 1, 16)
    residuum = dataset.residuum_fn(dataset.train[:, 1], dataset.train[:, 0])
    assert float(np.max(np.abs(residuum))) < 1e-5


def test_example_configs_are_valid():
    import pathlib

    configs = sorted((pathlib.Path(__file__).parent.parent / "examples" / "configs").glob("*.toml"))
    assert any(p.name == "advection_quick.toml" for p in configs)
    for path in configs:
        if "catalogue" in tx.experiment._toml.loads(path.read_text()):
            # a `trainax-fm zero-shot` experiment
            assert tx.experiment.load_forecast_config(path)["name"] == path.stem
            continue
        config = load_config(path)
        assert config["name"] and parse_method(config["training"]["method"])


# --- runner -----------------------------------------------------------------------------


@pytest.mark.parametrize("num_seeds", [1, 2])
def test_nonfinite_loss_stops_the_run_and_keeps_the_last_checkpoint(tmp_path, num_seeds):
    import equinox as eqx
    import jax

    from trainax_fm.experiment import _setup

    # Adam moves every weight by about the learning rate: after one update the
    # outputs overflow, so update 1 has a NaN loss and update 0 is the last good one.
    config = {
        "name": "nan", "num_seeds": num_seeds,
        "data": {"num_train_samples": 4, "num_test_samples": 2, "temporal_horizon": 6,
                 "num_points": 16, "highest_init_mode": 3},
        "network": {"spec": "Conv;4;1;relu"},
        "training": {"method": "one", "num_training_steps": 8, "batch_size": 4,
                     "learning_rate": 1e30, "checkpoint_every": 1},
        "evaluation": {"num_rollout_steps": 3},
    }
    with pytest.raises(tx.NonFiniteLossError, match="update 1") as info:
        tx.experiment.run_experiment(config, tmp_path, quiet=True)
    run = tmp_path / "nan"
    checkpoint = run / "checkpoint.eqx"
    assert str(checkpoint) in str(info.value)
    assert ("(seed " in str(info.value)) == (num_seeds > 1)
    assert not (run / "metrics.json").exists()

    saved = load_config(run / "config.toml")
    key = jax.random.PRNGKey(0)
    if num_seeds == 1:
        like = _setup.init_stepper(saved, 1, 1, 16, key)
    else:
        layout = jax.ShapeDtypeStruct((1, 1, 1, 16), "float32")
        like = _setup.build_steppers(saved, layout, jax.random.split(key, num_seeds))
    state = tx.load_train_state(checkpoint, like, _setup.build_optimizer(saved["training"]))
    assert state.step == 1
    assert state.loss_history.shape == ((1,) if num_seeds == 1 else (num_seeds, 1))
    assert np.all(np.isfinite(state.loss_history))
    weights = jax.tree_util.tree_leaves(eqx.filter(state.stepper, eqx.is_inexact_array))
    assert all(np.all(np.isfinite(w)) for w in weights)


def test_on_disk_sources_train_like_files(tmp_path):
    """`hdf5:`/`npy:` sources: the same split, the same trained network as `file:`."""
    h5py = pytest.importorskip("h5py")
    rng = np.random.default_rng(0)
    array = rng.normal(size=(10, 6, 1, 8)).astype(np.float32)
    np.save(tmp_path / "a.npy", array)
    with h5py.File(tmp_path / "a.h5", "w") as f:
        f["u"] = array
    # relative paths are resolved against the config file; the data set name is kept
    (tmp_path / "c.toml").write_text(
        '[data]\nsource = "hdf5:a.h5#u"\n[evaluation]\nnum_rollout_steps = 2\n'
    )
    assert load_config(tmp_path / "c.toml")["data"]["source"] == f"hdf5:{tmp_path / 'a.h5'}#u"
    dataset, config = tx.experiment.load_data(
        validate_config({"data": {"source": f"npy:{tmp_path / 'a.npy'}"},
                         "evaluation": {"num_rollout_steps": 3}}))
    assert isinstance(dataset.train, tx.data.DiskTrajectories)
    assert dataset.train.shape == (8, 6, 1, 8) and dataset.num_points == 8
    np.testing.assert_array_equal(dataset.test, array[8:, :4])
    assert config["network"]["spec"].startswith("Conv")
    # validation trajectories are held out of the on-disk training data
    held_out = dataset.hold_out(2)
    assert held_out.train.shape == (6, 6, 1, 8)
    np.testing.assert_array_equal(held_out.validation, array[6:8])
    summaries = {}
    for name, source in (("file", f"file:{tmp_path / 'a.npy'}"),
                         ("disk", f"hdf5:{tmp_path / 'a.h5'}#u")):
        run = {"name": name, "data": {"source": source, "test_source": f"npy:{tmp_path / 'a.npy'}",
                                      "num_test_samples": 2},
               "network": {"spec": "Conv;4;2;relu"},
               "training": {"method": "sup;2", "num_training_steps": 6, "batch_size": 4},
               "validation": {"num_samples": 2, "every": 3, "metrics": "loss;nrmse@2"},
               "evaluation": {"num_rollout_steps": 3}}
        summaries[name] = tx.experiment.run_experiment(run, tmp_path / "runs", quiet=True)
    assert summaries["disk"]["nrmse"] == summaries["file"]["nrmse"]
    assert (tmp_path / "runs" / "disk" / "network.eqx").read_bytes() == (
        tmp_path / "runs" / "file" / "network.eqx").read_bytes()


def test_on_disk_source_errors_name_the_field(tmp_path):
    h5py = pytest.importorskip("h5py")
    with h5py.File(tmp_path / "a.h5", "w") as f:
        f["u"] = np.zeros((4, 6, 1, 8), np.float32)
    with pytest.raises(ConfigError, match=r"data.source.*no data set 'v'; it holds \['u'\]"):
        tx.experiment.load_data(
            validate_config({"data": {"source": f"hdf5:{tmp_path / 'a.h5'}#v"}})
        )
    with pytest.raises(ConfigError, match="data.source.*no npy trajectory file"):
        tx.experiment.load_data(validate_config({"data": {"source": f"npy:{tmp_path / 'b.npy'}"}}))
    with pytest.raises(ConfigError, match="data.source"):
        validate_config({"data": {"source": "hdf5:#u"}})
    with pytest.raises(ConfigError, match="num_seeds"):
        validate_config({"num_seeds": 2, "data": {"source": f"hdf5:{tmp_path / 'a.h5'}#u"}})
    with pytest.raises(ConfigError, match="training.steps_per_dispatch"):
        validate_config({"data": {"source": f"hdf5:{tmp_path / 'a.h5'}#u"},
                         "training": {"steps_per_dispatch": 4}})
    with pytest.raises(ConfigError, match="data.test_source"):
        validate_config(
            {"data": {"source": f"hdf5:{tmp_path / 'a.h5'}#u", "test_source": "lorenz"}}
        )


def test_lorenz96_source_builds_fields_and_its_reference():
    config = tx.experiment.default_config("lorenz96", name="l96")
    config["data"].update(num_train_samples=2, num_test_samples=1, temporal_horizon=5,
                          num_points=8, num_warmup_steps=10)
    assert config["network"]["spec"].startswith("Conv")
    dataset, _ = tx.experiment.load_data(config)
    assert dataset.train.shape == (2, 5, 1, 8)
    np.testing.assert_allclose(
        jax.vmap(dataset.ref_stepper)(dataset.train[:, 0]), dataset.train[:, 1], rtol=1e-5
    )


# --- ODE sources: the shipped Lorenz example ---------------------------------------------

EXAMPLE_CONFIGS = (
    __import__("pathlib").Path(__file__).resolve().parent.parent / "examples" / "configs"
)


def test_lorenz_defaults_predict_normalised_increments():
    # An MLP on raw Lorenz-63 states learns nothing; `--default --source lorenz` and
    # the shipped example must both train the residual-normalised stepper.
    assert tx.experiment.default_config("lorenz")["network"]["normalize"] == "residual"
    assert tx.experiment.default_config("advection")["network"]["normalize"] == "none"
    example = load_config(EXAMPLE_CONFIGS / "lorenz_mlp.toml")
    assert example["network"]["normalize"] == "residual"
    # an explicit choice still wins over the source's default
    chosen = validate_config({"data": {"source": "lorenz"}, "network": {"normalize": False}})
    assert chosen["network"]["normalize"] == "none"


def test_shipped_lorenz_example_trains_and_reports_no_correlation_time(tmp_path):
    """The example as shipped (3 seeds, residual normalisation) with 150 instead of
    3000 updates: it learns the step (nRMSE@1 ~ 0.01; 0.78 with raw states), and its
    summary has no high-correlation time, which means nothing for (3,) states."""
    config = load_config(EXAMPLE_CONFIGS / "lorenz_mlp.toml")
    config["training"].update(num_training_steps=150, checkpoint_every=150)
    config["evaluation"].update(num_rollout_steps=20, nrmse_aggregate_steps=20)
    messages = []
    result = tx.experiment.run_experiment(config, tmp_path, printer=messages.append)
    assert result["nrmse"][0] < 0.05, result["nrmse"][:3]
    assert result["final_train_loss"] < 1.0
    assert result["high_correlation_time"] is None and result["correlation"] is None
    summary = messages[-1]
    assert "test nRMSE of network_seed*.eqx: step 1" in summary
    assert "correlation" not in summary
    rows = tx.experiment.collect_results(tmp_path)
    assert rows[0]["high_correlation_time"] is None


@pytest.mark.parametrize(
    "name, loss_type", [("amse", tx.loss.AMSELoss), ("mse+spectral", tx.loss.CompositeLoss)]
)
def test_time_level_loss_sets_the_rollout_methods_loss_per_state(name, loss_type):
    import optax

    from trainax_fm.experiment import _setup

    data = {"source": "advection", "num_train_samples": 4, "num_test_samples": 2,
            "temporal_horizon": 10, "num_points": 16}
    for method in ("one", "pf;1;3", "gtf;3;0.5"):
        config = validate_config({"data": data,
                                  "training": {"method": method, "time_level_loss": name}})
        dataset = tx.experiment.load_data(config)[0]
        trainer = _setup.build_trainer(config, dataset, parse_method(method), optax.adam(1e-3))
        assert isinstance(trainer.loss_configuration.time_level_loss, loss_type)
    config = validate_config({"data": data,
                              "training": {"method": "mmd;2;0.1", "time_level_loss": name}})
    with pytest.raises(ConfigError, match="rollout methods") as caught:
        _setup.build_trainer(config, tx.experiment.load_data(config)[0],
                             parse_method("mmd;2;0.1"), optax.adam(1e-3))
    assert caught.value.path == "training.time_level_loss"
