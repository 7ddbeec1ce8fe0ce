"""The `trainax-fm` command line (also `python -m trainax_fm`).

```
trainax-fm train CONFIG.toml [--resume] [--overwrite] [--stop-after K]
                 [--results DIR] [--name NAME] [--quiet]
trainax-fm train --default [--source SOURCE] ...   # built-in defaults, no file
trainax-fm eval RESULTS_DIR [--data FILE] [--num-rollout-steps R] [--out FILE]
trainax-fm table RESULTS_ROOT [--csv OUT.csv] [--sort COLUMN [--descending]]
trainax-fm zero-shot CONFIG.toml | --default [--results DIR] [--name NAME]
                 [--overwrite] [--quiet]            # many systems, zero-shot table
trainax-fm config [--source SOURCE]                 # print a full default config
```

Exit codes: 0 success, 1 a runtime problem (missing files, existing run), 2 an
invalid configuration or command line, 130 interrupted.
"""

import argparse
import json
import os
import sys
import warnings
from pathlib import Path
from typing import Optional, Sequence

# the CLI is a module of the package, so importing it has already imported all of these
from . import NonFiniteLossError, __version__
from .experiment import (
    ConfigError,
    collect_results,
    config_to_toml,
    default_config,
    evaluate,
    run_experiment,
    run_zero_shot,
    sort_rows,
    to_csv,
    to_markdown,
)
from .experiment._wording import cli_wording

EPILOG = """\
examples:
  trainax-fm train examples/configs/advection_quick.toml
  trainax-fm train --default                 # advection with built-in defaults
  trainax-fm train my.toml --stop-after 500  # ... then: trainax-fm train my.toml --resume
  trainax-fm eval results/advection_quick
  trainax-fm table results --csv results.csv
  trainax-fm config --source lorenz > lorenz.toml
"""


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `trainax-fm` (sub-commands train, eval, table, config)."""
    parser = argparse.ArgumentParser(
        prog="trainax-fm",
        description="Train, evaluate and compare autoregressive neural emulators "
        "from TOML experiment configurations.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"trainax_fm {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    train = commands.add_parser(
        "train", help="train one experiment into RESULTS/NAME/",
        description="Train one experiment: checkpoint, config.toml, network, "
        "metrics.json and plots in RESULTS/NAME/.",
    )
    train.add_argument("config", nargs="?", help="the experiment's TOML file")
    train.add_argument("--default", action="store_true",
                       help="use the built-in default configuration instead of a file")
    train.add_argument("--source", default="advection",
                       help="data source of --default (default: advection)")
    train.add_argument("--resume", action="store_true",
                       help="continue the run in RESULTS/NAME from its checkpoint")
    train.add_argument("--overwrite", action="store_true",
                       help="delete an existing run in RESULTS/NAME and start over")
    train.add_argument("--stop-after", type=_positive_int, metavar="K",
                       help="train at most K more updates, then checkpoint and exit "
                       "(continue with --resume)")
    train.add_argument("--results", default="results", metavar="DIR",
                       help="results root (default: ./results)")
    train.add_argument("--name", help="override the configuration's name (subfolder)")
    train.add_argument("--quiet", action="store_true", help="no progress bar or summary")

    evaluate = commands.add_parser(
        "eval", help="roll a trained emulator out on test data and score it",
        description="Roll the saved emulator(s) of RESULTS_DIR out on test data; "
        "writes eval.json (or eval_<stem>.json) and prints the metrics.",
    )
    evaluate.add_argument("results_dir", help="a folder written by `trainax-fm train`")
    evaluate.add_argument("--data", metavar="FILE",
                          help="test trajectories (S, T, C, *spatial) in .npy/.npz "
                          "(default: regenerate the run's own test data)")
    evaluate.add_argument("--num-rollout-steps", type=_positive_int, metavar="R",
                          help="rollout length (default: the configuration's)")
    evaluate.add_argument("--out", metavar="FILE", help="where to write the metrics JSON")
    evaluate.add_argument("--no-plots", action="store_true", help="write no plots")
    evaluate.add_argument("--quiet", action="store_true", help="print nothing")

    table = commands.add_parser(
        "table", help="collect the metrics of several runs into one table",
        description="Print a Markdown table of every metrics.json below RESULTS_ROOT "
        "and write it as CSV.",
    )
    table.add_argument("root", metavar="RESULTS_ROOT", help="folder holding run folders")
    table.add_argument("--csv", metavar="OUT.csv",
                       help="CSV file to write (default: RESULTS_ROOT/results.csv)")
    table.add_argument("--sort", metavar="COLUMN",
                       help="order the runs by this column, e.g. best_validation "
                       "(ascending; runs without a value last)")
    table.add_argument("--descending", action="store_true",
                       help="with --sort: largest first")

    zero_shot = commands.add_parser(
        "zero-shot", help="train one forecaster on many chaotic systems, test it zero-shot",
        description="Generate a catalogue of chaotic systems, train a patch forecaster on "
        "the mixture of its training systems and score it on the held-out ones: "
        "catalogue/, forecaster.eqx, zero_shot.md/.csv, metrics.json and plots in "
        "RESULTS/NAME/.",
    )
    zero_shot.add_argument("config", nargs="?", help="the experiment's TOML file")
    zero_shot.add_argument("--default", action="store_true",
                           help="use the built-in default configuration instead of a file")
    zero_shot.add_argument("--results", default="results", metavar="DIR",
                           help="results root (default: ./results)")
    zero_shot.add_argument("--name", help="override the configuration's name (subfolder)")
    zero_shot.add_argument("--overwrite", action="store_true",
                           help="delete an existing run in RESULTS/NAME and start over")
    zero_shot.add_argument("--quiet", action="store_true", help="print nothing")

    config = commands.add_parser(
        "config", help="print a complete default configuration",
        description="Print the default configuration of a data source as TOML.",
    )
    config.add_argument("--source", default="advection",
                        help="data source (advection, lorenz, exponax:<scenario>)")
    return parser


def _train(args, parser) -> int:
    if args.default == (args.config is not None):
        parser.error("train needs a CONFIG file or --default (not both)")
    if args.resume and args.overwrite:
        parser.error("--resume and --overwrite exclude each other: --resume continues "
                     "the run in RESULTS/NAME, --overwrite deletes it; pass only one")
    config = args.config
    if args.default:
        config = default_config(args.source, name="default")
    result = run_experiment(
        config, args.results, name=args.name, resume=args.resume,
        overwrite=args.overwrite, stop_after=args.stop_after, quiet=args.quiet,
    )
    del result
    return 0


def _eval(args) -> int:
    metrics = evaluate(
        args.results_dir, data=args.data, num_rollout_steps=args.num_rollout_steps,
        output=args.out, plots=not args.no_plots,
    )
    if not args.quiet:
        nrmse = metrics["nrmse"]
        short = {k: v for k, v in metrics.items()
                 if k not in ("nrmse", "correlation", "nrmse_per_seed")}
        short["nrmse_step1"], short["nrmse_last"] = nrmse[0], nrmse[-1]
        print(json.dumps(short, indent=2))
    return 0


def _table(args) -> int:
    rows = collect_results(args.root)
    if not rows:
        print(f"no finished runs (metrics.json) below {args.root!r}", file=sys.stderr)
        return 1
    if args.sort:
        try:
            rows = sort_rows(rows, args.sort, descending=args.descending)
        except ValueError as error:
            print(f"trainax-fm: error: {error}", file=sys.stderr)
            return 2
    path = Path(args.csv) if args.csv else Path(args.root) / "results.csv"
    to_csv(rows, path)
    print(to_markdown(rows))
    print(f"\n{len(rows)} run(s); CSV written to {str(path)!r}")
    return 0


def _zero_shot(args, parser) -> int:
    if args.default == (args.config is not None):
        parser.error("zero-shot needs a CONFIG file or --default (not both)")
    run_zero_shot(
        {} if args.default else args.config, args.results, name=args.name,
        overwrite=args.overwrite, quiet=args.quiet,
    )
    return 0


def _config(args) -> int:
    sys.stdout.write(config_to_toml(default_config(args.source)))
    return 0


_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def _command_warnings(fallback):
    """A `warnings.showwarning` that prints trainax_fm's own warnings as one line of
    the command (no source line) and passes those of other packages to `fallback`."""

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        own = os.path.abspath(filename).startswith(_PACKAGE_DIR)
        if issubclass(category, UserWarning) and own:
            print(f"trainax-fm: warning: {message}", file=sys.stderr if file is None else file)
        else:
            fallback(message, category, filename, lineno, file, line)

    return show


def _run_command(args, parser) -> int:
    if args.command == "train":
        return _train(args, parser)
    if args.command == "eval":
        return _eval(args)
    if args.command == "table":
        return _table(args)
    if args.command == "zero-shot":
        return _zero_shot(args, parser)
    return _config(args)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the `trainax-fm` command line.

    **Arguments:**

    - `argv`: the arguments without the program name (default: `sys.argv[1:]`).

    **Returns:**

    - The exit code: 0 success, 1 runtime problem, 2 invalid configuration or
        arguments, 130 interrupted.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    with warnings.catch_warnings():
        warnings.showwarning = _command_warnings(warnings.showwarning)
        return _run(args, parser)


def _run(args, parser) -> int:
    try:
        with cli_wording():
            return _run_command(args, parser)
    except ConfigError as error:
        print(f"trainax-fm: configuration error: {error}", file=sys.stderr)
        return 2
    except (FileExistsError, FileNotFoundError, NonFiniteLossError) as error:
        print(f"trainax-fm: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("trainax-fm: interrupted; `train ... --resume` continues from the last "
              "checkpoint.", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
