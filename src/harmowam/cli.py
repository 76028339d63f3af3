"""Console commands: ``lightning`` (LightningCLI) and ``harmowam`` (everything else)."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import warnings
from pathlib import Path
from typing import Any, Optional, Sequence

from harmowam.files import FolderLockedError
from harmowam.sim.cameras import list_cameras
from harmowam.sim.env import DEFAULT_CAMERA, DEFAULT_IMAGE_SIZE


# -- argument types: a bad value is one clear line from argparse, naming the option ---------------
def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def image_size(text: str) -> int:
    value = int(text)
    if value < 16 or value % 8:
        raise argparse.ArgumentTypeError(f"must be a multiple of 8 and at least 16 (the encoders' 8-pixel patches "
                                         f"and the VAE's downsampling), got {value}")
    return value


def _known_errors() -> tuple[type[BaseException], ...]:
    from harmowam.data.format import DatasetError
    from harmowam.registry import ComponentConfigError, UnknownComponentError
    from harmowam.safe_load import UnsafeCheckpointError

    # FileNotFoundError: a missing world model, data folder or weights file; its message names the path
    return (DatasetError, ComponentConfigError, UnknownComponentError, UnsafeCheckpointError, FolderLockedError,
            FileNotFoundError)


#: Trainer options where an int counts batches and a float is a fraction: jsonargparse reads "1" on the command
#: line as 1.0 (every batch), so an integer written there is given back as an int (one batch)
COUNT_OR_FRACTION = ("limit_train_batches", "limit_val_batches", "limit_test_batches", "limit_predict_batches",
                     "val_check_interval", "overfit_batches")


def _fill_from_data(cfg: Any) -> None:
    """Model settings the config leaves unset (state and action widths, image size, instruction vocabulary)
    come from the data folders' ``meta.json``; see :mod:`harmowam.data.shapes`."""
    from harmowam.data.format import META_FILE
    from harmowam.data.shapes import fill_model_args, read_data_shapes

    model_args, dirs = cfg.get("model.init_args"), cfg.get("data.init_args.data_dirs")
    if model_args is None or not dirs:
        return
    dirs = [dirs] if isinstance(dirs, str) else list(dirs)
    if not all((Path(d) / META_FILE).is_file() for d in dirs):
        return  # the data module names the missing folder when it opens it
    before = model_args.as_dict()
    for key, value in fill_model_args(before, read_data_shapes(dirs)).items():
        if value != before.get(key):
            model_args[key] = value


def _continue_logged_run(cfg: Any) -> None:
    """``--ckpt_path runs/<name>/version_<k>/checkpoints/last.ckpt``: the resumed fit logs into that same
    TensorBoard run (and checkpoint folder) instead of starting version_<k+1>."""
    ckpt, logger = cfg.get("ckpt_path"), cfg.get("trainer.logger")
    if not ckpt or not Path(ckpt).is_file() or not hasattr(logger, "init_args"):
        return
    run = Path(ckpt).resolve().parent.parent
    args = logger.init_args
    if args.get("version") is not None or not run.name.startswith("version_"):
        return
    if (Path(args.get("save_dir") or ".") / str(args.get("name") or "") / run.name).resolve() == run:
        args["version"] = run.name


def _integer_trainer_fractions(argv: Sequence[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    for i, arg in enumerate(argv):
        for key in COUNT_OR_FRACTION:
            flag = f"--trainer.{key}"
            value = arg[len(flag) + 1:] if arg.startswith(flag + "=") else (
                argv[i + 1] if arg == flag and i + 1 < len(argv) else None)
            if value is not None and value.strip().lstrip("+").isdigit():
                found[key] = int(value)
    return found


def _known_cause(exc: BaseException | None) -> BaseException | None:
    """The first error of a known kind in ``exc``'s chain of causes, or None."""
    known, seen = _known_errors(), set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, known):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def _message(exc: BaseException) -> str:
    return str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)  # KeyError's str() adds quotes


def lightning_main(args: Sequence[str] | None = None) -> None:
    """``lightning fit|validate|test|predict -c CONFIG [--key=value ...]`` (the console script)."""
    build_cli(args)


def build_cli(args: Sequence[str] | None = None, run: bool = True) -> Any:
    """``lightning fit|validate|test|predict -c CONFIG [--key=value ...]``; ``--ckpt_path`` is read with
    ``weights_only=True`` (harmowam.safe_load): a checkpoint handed to the command cannot run code.
    ``run=False``: parse and instantiate without a subcommand (``args`` then holds none); returns the CLI."""
    import lightning as L
    from lightning.pytorch.cli import LightningCLI

    from harmowam.safe_load import load_checkpoint

    from harmowam.config_base import ConfigBaseError, expand_config_bases

    # argv, bases expanded, is handed to LightningCLI as `args`: its warning about args beside sys.argv is moot
    warnings.filterwarnings("ignore", message="LightningCLI's args parameter is intended")
    try:
        argv = expand_config_bases(list(args) if args is not None else sys.argv[1:])
    except ConfigBaseError as exc:
        sys.exit(f"lightning: error: {exc}")

    class HarmowamCLI(LightningCLI):
        def add_arguments_to_parser(self, parser: Any) -> None:
            parser.add_argument("--base", type=Optional[str], default=None,
                                help="in a config file: a config read before it (harmowam.config_base)")

        def _parse_ckpt_path(self) -> None:
            sub = self.config.get("subcommand")
            ckpt = self.config[sub].get("ckpt_path") if sub else None
            if ckpt and Path(ckpt).is_file():
                load_checkpoint(ckpt)  # LightningCLI reads the file's hyperparameters next: refuse it here, by name
            super()._parse_ckpt_path()

        def before_instantiate_classes(self) -> None:
            sub = self.config.get("subcommand")
            cfg = self.config[sub] if sub else self.config
            _fill_from_data(cfg)
            _continue_logged_run(cfg)

        def instantiate_trainer(self, **kwargs: Any) -> L.Trainer:
            # jsonargparse reads "--trainer.limit_val_batches=1" as 1.0 (every batch); an integer typed there
            # counts batches, as Lightning documents (the saved config.yaml still shows the float)
            return super().instantiate_trainer(**{**_integer_trainer_fractions(argv), **kwargs})

        def _prepare_subcommand_kwargs(self, subcommand: str) -> dict:
            kwargs = super()._prepare_subcommand_kwargs(subcommand)  # ckpt_path was checked in _parse_ckpt_path
            if "weights_only" in self._subcommand_method_arguments[subcommand]:
                kwargs["weights_only"] = True
            return kwargs

    try:
        return HarmowamCLI(
            L.LightningModule,
            L.LightningDataModule,
            subclass_mode_model=True,
            subclass_mode_data=True,
            save_config_kwargs={"overwrite": True},
            args=argv,
            run=run,
        )
    except Exception as exc:
        known = _known_cause(exc)  # jsonargparse wraps a component's error in its own
        if known is None:
            raise
        sys.exit(f"lightning: error: {_message(known)}")  # bad input the project recognises: one line, no traceback


# -- harmowam plugins ---------------------------------------------------------------------
def _cmd_plugins(ns: argparse.Namespace) -> int:
    from harmowam.registry import registrations

    rows = [(r.kind, r.name, r.distribution, f"{r.constructor.__module__}.{r.constructor.__qualname__}")
            for r in registrations()]
    header = ("kind", "name", "distribution", "provided by")
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    for row in [header, tuple("-" * w for w in widths), *rows]:
        print("  ".join(str(x).ljust(w) for x, w in zip(row, widths)).rstrip())
    return 0


# -- harmowam data ------------------------------------------------------------------------
def _cmd_data_generate(ns: argparse.Namespace) -> int:
    from harmowam.sim.generate import PRESETS, GenerationConfig, generate
    from harmowam.sim.tasks import list_tasks
    from harmowam.sim.variations import SceneVariation

    preset = PRESETS[ns.preset] if ns.preset else {}
    variation = dict(preset.get("variation", {}))
    for key in ("background", "object_color", "object_shape", "position_scale", "position_exclude"):
        if getattr(ns, key) is not None:
            variation[key] = getattr(ns, key)
    if ns.position_offset is not None:
        variation["position_offset"] = tuple(float(v) for v in ns.position_offset.split(","))
    tasks = list_tasks() if ns.tasks in (None, "all") else ns.tasks.split(",")
    cfg = GenerationConfig(
        tasks=tasks,
        episodes=ns.episodes if ns.episodes is not None else preset.get("episodes", 50),
        seed=ns.seed if ns.seed is not None else preset.get("seed", 0),
        image_size=ns.image_size, camera=ns.camera, max_steps=ns.max_steps,
        variation=SceneVariation(**variation), workers=ns.workers,
        action_noise=ns.action_noise if ns.action_noise is not None else preset.get("action_noise", 0.0),
    )
    out = generate(ns.out, cfg, overwrite=ns.overwrite, preset=ns.preset)
    print(f"wrote {out}")
    return 0


def _cmd_data_info(ns: argparse.Namespace) -> int:
    from collections import Counter

    from harmowam.data.format import EpisodeStore

    store = EpisodeStore(ns.path)
    print(store)
    counts = Counter(e.task for e in store.episodes)
    lengths: dict[str, list[int]] = {}
    for e in store.episodes:
        lengths.setdefault(e.task, []).append(e.length)
    for task, n in sorted(counts.items()):
        ls = lengths[task]
        print(f"  {task:24s} {n:4d} episodes, {min(ls)}-{max(ls)} steps (mean {sum(ls) / len(ls):.1f})")
    print(json.dumps(store.meta.get("generation", {}).get("variation", {})))
    return 0


def _cmd_data_import_lerobot(ns: argparse.Namespace) -> int:
    from harmowam.data.lerobot import import_lerobot

    summary = import_lerobot(ns.src, ns.out, ns.camera, ns.state_key, ns.action_key, ns.image_size, ns.overwrite)
    print(json.dumps(summary, indent=1))
    return 0


def _cmd_data_export_lerobot(ns: argparse.Namespace) -> int:
    from harmowam.data.lerobot.writer import export_lerobot

    print(json.dumps(export_lerobot(ns.src, ns.out, ns.video, ns.fps, ns.robot_type, ns.overwrite), indent=1))
    return 0


def _cmd_pipeline(ns: argparse.Namespace) -> int:
    from harmowam.pipeline import run_pipeline

    run_pipeline(ns.workdir, ns.preset, ns.workers, ns.image_size)
    return 0


def _cmd_compare(ns: argparse.Namespace) -> int:
    from harmowam.compare import run_compare

    run_compare(ns.preset, ns.workdir, ns.workers, ns.reuse, ns.image_size)
    return 0


def _cmd_sweep(ns: argparse.Namespace) -> int:
    from harmowam.sweep import run_sweep

    print(f"wrote {run_sweep(ns.sweep)}")
    return 0


def _cmd_eval(ns: argparse.Namespace) -> int:
    from harmowam.eval.policies import REFERENCE_POLICIES, default_policy_name
    from harmowam.eval.runner import EvalConfig, PolicySpec, evaluate

    ckpts = ns.ckpt or []
    names = ns.name or []
    if names and len(names) != len(ckpts):
        raise ValueError(f"give one --name per --ckpt ({len(ckpts)} checkpoints, {len(names)} names)")
    gates = [None] if not ns.gate else [None if g == "checkpoint" else g for g in ns.gate.split(",")]
    specs = [PolicySpec("checkpoint", path=c, name=names[i] if names else None,
                        n_action_steps=ns.n_action_steps, device=ns.device, gate=g)
             for i, c in enumerate(ckpts) for g in gates]
    references = [p for p in (ns.policy or "").split(",") if p]
    if ckpts and not ns.policy and not ns.no_reference:
        references = list(REFERENCE_POLICIES)  # every table carries its own sanity check
    specs += [PolicySpec(p) for p in references]
    out = ns.out
    if out is None:
        ckpt = Path(ckpts[0]) if len(ckpts) == 1 else None
        if ckpt is not None and ckpt.parent.name == "checkpoints":
            out = ckpt.parent.parent / "eval" / ns.suite
        else:
            label = default_policy_name(ckpt) if ckpt else "comparison" if ckpts else "reference"
            out = Path("runs/eval") / label / ns.suite
    cfg = EvalConfig(suite=ns.suite, conditions=ns.conditions, tasks=ns.tasks, episodes=ns.episodes,
                     max_steps=ns.max_steps, workers=ns.workers, inference=ns.inference, envs=ns.envs, videos=ns.videos, camera=ns.camera,
                     image_size=ns.image_size, out=out, timelines=not ns.no_timelines)
    summary = evaluate(specs, cfg)
    print(f"wrote {summary['out']}/results.md, summary.csv, results.csv, episodes.jsonl")
    return 0


def _cmd_data_labels(ns: argparse.Namespace) -> int:
    from harmowam.data.format import EpisodeStore
    from harmowam.labels.strategies import interaction_fractions
    from harmowam.registry import get_label_strategy, list_label_strategies

    store = EpisodeStore(ns.path)
    names = ns.strategies.split(",") if ns.strategies else list_label_strategies()
    table = {name: interaction_fractions(store, get_label_strategy(name)) for name in names}
    tasks = store.tasks
    print("| task | " + " | ".join(names) + " |")
    print("|" + " --- |" * (len(names) + 1))
    for task in tasks:
        print(f"| {task} | " + " | ".join(f"{table[n][task]:.2f}" for n in names) + " |")
    return 0


class DefaultsHelpFormatter(argparse.HelpFormatter):
    """Appends "(default: ...)" to an option's help, unless the help already says it or there is none."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text or action.default in (None, False, argparse.SUPPRESS) or not action.option_strings:
            return text
        return f"{text} (default: %(default)s)".strip()


def build_parser() -> argparse.ArgumentParser:
    from harmowam.sim.generate import PRESETS

    parser = argparse.ArgumentParser(prog="harmowam", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("plugins", help="list registered components and the distribution of each")
    p.set_defaults(func=_cmd_plugins)

    data = sub.add_parser("data", help="generate or inspect demonstration data").add_subparsers(dest="data_command", required=True)
    g = data.add_parser("generate", help="run Meta-World's scripted experts and write a dataset folder",
                        formatter_class=DefaultsHelpFormatter)
    g.add_argument("--out", required=True, help="dataset folder to write")
    g.add_argument("--preset", choices=sorted(PRESETS), help="a data regime: narrow 'demos' or broad 'wm_video'")
    g.add_argument("--tasks", default=None, help="comma-separated task names, or 'all' (default)")
    g.add_argument("--episodes", type=positive_int, default=None, help="successful episodes per task (default 50)")
    g.add_argument("--seed", type=int, default=None, help="first episode seed (default: the preset's)")
    g.add_argument("--image-size", type=image_size, default=DEFAULT_IMAGE_SIZE, help="rendered frame side in pixels")
    g.add_argument("--camera", default=DEFAULT_CAMERA, choices=list_cameras(), help="camera view (harmowam.sim.cameras)")
    g.add_argument("--max-steps", type=positive_int, default=200, help="step limit per episode")
    g.add_argument("--background", default=None, help="background palette: train or test")
    g.add_argument("--object-color", default=None, help="object colour palette: train or test")
    g.add_argument("--object-shape", default=None, help="object shape for push and pick-place: cube, sphere, or a shape palette (train, test)")
    g.add_argument("--position-scale", type=float, default=None, help="scale of the object/goal reset range")
    g.add_argument("--position-exclude", type=float, default=None,
                   help="keep the object outside this central fraction of its range (e.g. 0.5)")
    g.add_argument("--position-offset", default=None, help="x,y shift of the object range in metres")
    g.add_argument("--action-noise", type=float, default=None,
                   help="std of Gaussian noise added to the executed actions (DART); stored actions stay the "
                        "expert's clean ones (default: the preset's, else 0)")
    g.add_argument("--workers", type=positive_int, default=2, help="generation processes")
    g.add_argument("--overwrite", action="store_true")
    g.set_defaults(func=_cmd_data_generate)

    from harmowam.compare import COMPARISONS

    cmp = sub.add_parser("compare", help="the paradigm comparison: every paradigm, baseline and ablation on one world "
                                         "model, several seeds, one paired evaluation, the paper's tables",
                         formatter_class=DefaultsHelpFormatter)
    cmp.add_argument("--preset", default="cpu", choices=list(COMPARISONS),
                     help="'cpu' (3 tasks at 48 px, 9 configs x 2 seeds, about 70 minutes on 2 cores), 'gpu' (6 tasks, "
                          "4 configs, one lease), 'smoke' (minutes)")
    cmp.add_argument("--workdir", default=None,
                     help="where everything goes (default runs/compare/<preset>, or <preset>_<size>px with --image-size)")
    cmp.add_argument("--image-size", type=image_size, default=None,
                     help="frame side in pixels instead of the preset's (cpu: 48, as the quick pipeline; gpu: 64)")
    cmp.add_argument("--workers", type=positive_int, default=2, help="processes for data generation and evaluation")
    cmp.add_argument("--reuse", default=None, metavar="PIPELINE_DIR",
                     help="take the data, world model and its cache from a finished pipeline folder with the same "
                          "tasks and budgets (the cpu preset matches `pipeline --preset quick`: runs/pipeline/quick)")
    cmp.set_defaults(func=_cmd_compare)

    pl = sub.add_parser("pipeline", help="the main job end to end: generate data, train, evaluate, report")
    pl.add_argument("--preset", default="default",
                    help="'default' (the shipped configs, all six tasks, 64 px), 'quick' (three tasks at 48 px, fixed "
                         "step budgets: 23 to 26 minutes on the 2 CPU cores of the machine of 2026-12-07; 38 to 41 at 64 px) "
                         "or 'smoke' (minutes, checks the steps run)")
    pl.add_argument("--workdir", default=None,
                    help="where data/, runs/, checkpoints/, eval/ and report.json go (default runs/pipeline/<preset>, "
                         "or <preset>_<size>px with --image-size)")
    pl.add_argument("--image-size", type=image_size, default=None,
                    help="frame side in pixels instead of the preset's (quick: 48; default, smoke: 64)")
    pl.add_argument("--workers", type=positive_int, default=2, help="processes for data generation and evaluation")
    pl.set_defaults(func=_cmd_pipeline)

    sw = sub.add_parser("sweep", help="run a grid of configs and overrides; write a table of final metrics")
    sw.add_argument("sweep", help="a sweep file, e.g. experiments/sweeps/paradigms.yaml")
    sw.set_defaults(func=_cmd_sweep)

    from harmowam.eval.suite import SUITES

    listing = "; ".join(f"suite '{name}': tasks {', '.join(suite.tasks)}; conditions "
                        + ", ".join(f"{c} ({cond.description})" for c, cond in suite.conditions.items())
                        for name, suite in SUITES.items())
    ev = sub.add_parser("eval", help="closed-loop success rates of a checkpoint on a suite of tasks x conditions",
                        description="Closed-loop success rates of checkpoints and reference policies. " + listing,
                        formatter_class=DefaultsHelpFormatter)
    ev.add_argument("--ckpt", action="append", default=None,
                    help="a stage-2 policy checkpoint (.ckpt); repeat it to compare several in one table")
    ev.add_argument("--name", action="append", default=None,
                    help="a checkpoint's row name, one per --ckpt (default: from its run folder)")
    ev.add_argument("--policy", default=None,
                    help="reference policies to evaluate, comma-separated: scripted, random (with --ckpt: both, "
                         "unless --no-reference)")
    ev.add_argument("--no-reference", action="store_true", help="with --ckpt: skip the scripted and random rows")
    ev.add_argument("--gate", default=None,
                    help="comma-separated fixed gates to roll out each checkpoint with instead of its own, e.g. "
                         "'checkpoint,always_predictive,always_reactive' (checkpoint = its own gate): one row per "
                         "expert path")
    ev.add_argument("--suite", default="metaworld6", choices=sorted(SUITES), help="task suite")
    ev.add_argument("--conditions", default="all", help="comma-separated, or all")
    ev.add_argument("--tasks", default="all", help="comma-separated, or all")
    ev.add_argument("--episodes", type=positive_int, default=5, help="episodes per task and condition")
    ev.add_argument("--max-steps", type=positive_int, default=None, help="step limit per episode (default: the suite's, 200)")
    ev.add_argument("--n-action-steps", type=positive_int, default=None,
                    help="actions executed from each predicted chunk (default: the checkpoint's)")
    ev.add_argument("--workers", type=positive_int, default=2, help="environment processes")
    ev.add_argument("--inference", default="auto", choices=["auto", "workers", "batched"],
                    help="where policies act: workers (each environment process runs its own policy copy; fastest "
                         "on CPU), batched (--envs episodes in flight, one batched policy call per control step; "
                         "for a GPU), auto (batched when --device is not the CPU)")
    ev.add_argument("--envs", type=positive_int, default=8,
                    help="with batched inference: episodes in flight, spread over the workers")
    ev.add_argument("--videos", type=non_negative_int, default=1, help="episodes per policy, task and condition saved as GIF")
    ev.add_argument("--no-timelines", action="store_true", help="skip the gate-timeline PNGs")
    ev.add_argument("--camera", default=DEFAULT_CAMERA, choices=list_cameras(),
                    help="camera view when no checkpoint sets it")
    ev.add_argument("--image-size", type=image_size, default=DEFAULT_IMAGE_SIZE,
                    help="render size when no checkpoint sets it")
    ev.add_argument("--device", default="cpu", help="torch device of the checkpoint's policy")
    ev.add_argument("--out", default=None,
                    help="results folder (default: <run>/eval/<suite> beside the checkpoint's run)")
    ev.set_defaults(func=_cmd_eval)

    lab = data.add_parser("labels", help="fraction of interaction frames per task for each label strategy")
    lab.add_argument("path")
    lab.add_argument("--strategies", default=None, help="comma-separated names (default: all registered)")
    lab.set_defaults(func=_cmd_data_labels)

    i = data.add_parser("info", help="validate a dataset folder and summarise it")
    i.add_argument("path")
    i.set_defaults(func=_cmd_data_info)

    im = data.add_parser("import-lerobot", help="convert a LeRobotDataset v3 folder into a harmowam dataset",
                         formatter_class=DefaultsHelpFormatter)
    im.add_argument("src", help="LeRobotDataset v3 folder (meta/info.json, data/, videos/)")
    im.add_argument("out", help="harmowam dataset folder to write")
    im.add_argument("--camera", default=None, help="image or video feature to take (default: the only one)")
    im.add_argument("--state-key", default="observation.state", help="feature stored as the state")
    im.add_argument("--action-key", default="action", help="feature stored as the action")
    im.add_argument("--image-size", type=image_size, default=None,
                    help="crop frames square and resize to this side (default: keep square frames as they are)")
    im.add_argument("--overwrite", action="store_true")
    im.set_defaults(func=_cmd_data_import_lerobot)

    ex = data.add_parser("export-lerobot", help="write a harmowam dataset as a LeRobotDataset v3 folder",
                         formatter_class=DefaultsHelpFormatter)
    ex.add_argument("src", help="harmowam dataset folder")
    ex.add_argument("out", help="LeRobotDataset folder to write")
    ex.add_argument("--video", action="store_true",
                    help="frames as AV1 MP4 (small, lossy) instead of PNG in the data files (lossless)")
    ex.add_argument("--fps", type=positive_int, default=None, help="frame rate (default: the data's, Meta-World 80)")
    ex.add_argument("--robot-type", default=None, help="info.json's robot_type")
    ex.add_argument("--overwrite", action="store_true")
    ex.set_defaults(func=_cmd_data_export_lerobot)
    return parser


class Terminated(KeyboardInterrupt):
    """SIGTERM (``kill``, a job scheduler's stop), unwound like Ctrl-C: worker processes are stopped and folder
    locks released on the way out, where the default action would end the process and orphan its workers."""


def _terminate(signum: int, frame: Any) -> None:
    raise Terminated()


def harmowam_main(argv: Sequence[str] | None = None) -> int:
    ns = build_parser().parse_args(argv)
    on_term = signal.signal(signal.SIGTERM, _terminate) if threading.current_thread() is threading.main_thread() \
        else None
    try:
        code = ns.func(ns)
        sys.stdout.flush()  # output still buffered for a pipe: a reader that left shows here, not at exit (code 120)
        return code
    except (KeyError, ValueError, FileNotFoundError, FileExistsError, FolderLockedError) as exc:
        # Known bad input: one clear line, not a traceback.
        print(f"harmowam: error: {_message(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        print("harmowam: interrupted; finished work is kept, rerun the same command to resume", file=sys.stderr)
        return 143 if isinstance(exc, Terminated) else 130
    except BrokenPipeError:  # `harmowam plugins | head`: the reader left, which is not an error of this command
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing more to flush at exit
        return 141
    finally:
        if on_term is not None:
            signal.signal(signal.SIGTERM, on_term)


if __name__ == "__main__":
    sys.exit(harmowam_main())
