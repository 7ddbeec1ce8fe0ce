"""Experiments: configure, train, evaluate and compare emulators from a TOML file.

An *experiment* is one training run described by a small TOML configuration: where the
data comes from (`[data]`: built-in advection or Lorenz, an exponax scenario, or a
`.npy`/`.npz` file), which network (`[network] spec = "Conv;26;10;relu"`), how it is
trained (`[training] method = "sup;5"` in an APEBench-style grammar, optimizer, steps,
batch size, checkpoints) and how it is scored (`[evaluation]`: rollout length,
geometric-mean nRMSE, high-correlation time). `run_experiment` turns it into a
results folder:

```
results/<name>/
    config.toml        # the configuration as used, every default filled in
    checkpoint.eqx     # resumable TrainState (bit-identical continuation)
    progress.json      # updates done, accumulated training wall time
    network.eqx        # trained emulator (network_seed<i>.eqx with num_seeds > 1)
    metrics.json       # test rollout metrics, final train loss, wall time, #params
    loss.png  error_over_time.png
    spacetime.png | snapshots_2d.png | snapshots_3d.png | rollout.png   # 1D | 2D | 3D | ODE
```

The same from the shell (`trainax-fm` or `python -m trainax_fm`):

```bash
trainax-fm train examples/configs/advection_quick.toml      # or: train --default
trainax-fm train CONFIG.toml --stop-after 200               # ... later: --resume
trainax-fm eval results/advection_quick [--data test.npz]
trainax-fm table results --csv results.csv
```

- Schema and defaults: [`trainax_fm.experiment.load_config`][] (module
    `trainax_fm.experiment._config`); errors are
    [`trainax_fm.experiment.ConfigError`][] naming the field.
- Training-method grammar: [`trainax_fm.experiment.parse_method`][] /
    [`trainax_fm.experiment.format_method`][].
- Network grammar: [`trainax_fm.experiment.parse_network`][].
- Data sources: [`trainax_fm.experiment.load_data`][].
"""

from ._config import config_to_toml as config_to_toml
from ._config import default_config as default_config
from ._config import load_config as load_config
from ._config import save_config as save_config
from ._config import validate_config as validate_config
from ._data import Dataset as Dataset
from ._data import load_data as load_data
from ._data import load_trajectory_file as load_trajectory_file
from ._errors import ConfigError as ConfigError
from ._evaluate import evaluate as evaluate
from ._forecast_config import validate_forecast_config as validate_forecast_config
from ._forecast_run import ZeroShotRun as ZeroShotRun
from ._forecast_run import load_forecast_config as load_forecast_config
from ._forecast_run import run_zero_shot as run_zero_shot
from ._saved_networks import load_networks as load_networks
from ._evaluate import rollout_metrics as rollout_metrics
from ._method import TrainMethod as TrainMethod
from ._method_spec import canonical_method as canonical_method
from ._method_spec import format_method as format_method
from ._method_spec import parse_method as parse_method
from ._network import ConvNet as ConvNet
from ._network import NetworkSpec as NetworkSpec
from ._network import build_network as build_network
from ._network import format_network as format_network
from ._network import parse_network as parse_network
from ._runner import format_summary as format_summary
from ._runner import run_experiment as run_experiment
from ._table import collect_results as collect_results
from ._table import sort_rows as sort_rows
from ._table import results_table as results_table
from ._table import to_csv as to_csv
from ._table import to_dataframe as to_dataframe
from ._table import to_markdown as to_markdown
