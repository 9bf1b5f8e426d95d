"""`simplebits run CONFIG.toml` (the whole pipeline) and `simplebits report DIR` (its HTML page)."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass

from ..settings import setting
from .common import add_device, add_force, add_json, add_options, add_out, check_out, config_names_device, emit


@dataclass(frozen=True)
class RunOptions:
    """How `simplebits run` and `simplebits demo` use their output directory."""

    resume: bool = setting(False, "continue an interrupted run in the output directory (finished stages are kept)")
    force: bool = setting(False, "use an output directory holding another config's results: stages whose settings "
                                 "changed are recomputed, the others kept")
    report: bool = setting(True, "write report.html at the end")


@dataclass(frozen=True)
class ReportOptions:
    check: bool = setting(False, "open the page in headless Chromium and check that every image loads and nothing "
                                 "overflows")
    screenshot: str | None = setting(None, "with --check: save a full-page screenshot", metavar="PNG")


#: what --device does to the config's own `device` key (run, demo)
DEVICE_NOTE = "; resolved on this machine and written into the config's `device` key (a later --set device=... wins)"
DEVICE_DEFAULT = "the config file's `device` when it sets one, else auto"


def add_run_options(p: argparse.ArgumentParser) -> None:
    add_out(p, "DIR", "output directory (overrides the config's `out`)", required=False)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override one config key, TOML value (repeatable): --set evaluate.seeds=1 "
                        "--set condense.lambda_sim=[0,10]")
    add_options(p, RunOptions)
    add_device(p, DEVICE_NOTE, default=None, default_text=DEVICE_DEFAULT)
    add_json(p)


def register(sub: argparse._SubParsersAction) -> None:
    from ..pipeline import list_builtin

    p = sub.add_parser(
        "run", help="run the whole pipeline of a TOML config and write its HTML report",
        description="Run the stages of CONFIG in order: data summary and bpd histogram, random-real baselines, "
                    "condensed sets, pruning (IPC_F -> IPC_T), SimpleBits simplifiers, explanation, continual "
                    "learning; then write OUT/report.html. Finished stages whose settings match are skipped; an "
                    "interrupted run continues with --resume; a directory holding another config's results is "
                    "refused unless --force. CONFIG is a TOML file or a built-in config name "
                    f"({', '.join(list_builtin())}). Keys: docs/pipeline.md, or --print-config NAME.",
    )
    p.add_argument("config", nargs="?", metavar="CONFIG", help="TOML file or built-in config name")
    p.add_argument("--print-config", metavar="NAME", default=None,
                   help="print a built-in config (to copy and edit) and exit")
    add_run_options(p)
    p.set_defaults(func=run)

    r = sub.add_parser(
        "report", help="(re)write the self-contained HTML report of a pipeline or sweep output directory",
        description="Build OUT/report.html from the files of a `simplebits run` output directory: images and "
                    "plots inline, readable offline. Sections appear for the stages that ran. For a `simplebits "
                    "sweep` folder: the grid, every cell with a link to its report, the pooled results, the "
                    "accuracy-vs-bpd plot and the pruning table.",
    )
    r.add_argument("dir", metavar="DIR", help="output directory of `simplebits run` or `simplebits sweep`")
    add_out(r, "FILE", "where to write the page (default DIR/report.html)", required=False)
    add_force(r)
    add_options(r, ReportOptions)
    add_json(r)
    r.set_defaults(func=run_report)


def execute(config, args: argparse.Namespace):
    """Shared by `run` and `demo`: apply --device and --set, run, print."""
    from ..pipeline import run as run_pipeline
    from ..pipeline.config import apply_overrides, load_config
    from ..runtime import resolve_device

    # --device as the first --set: resolved here, where the run happens, so the config (and its hash) names the
    # device it ran on (auto on a machine without CUDA is cpu, the config's own default)
    # without --device: the config file's own `device` when it names one, else auto
    given = args.device if args.device is not None else None if config_names_device(config) else "auto"
    device = [f"device={json.dumps(resolve_device(given))}"] if given is not None else []
    cfg = apply_overrides(load_config(config), [*device, *args.set])
    # the folder's own rules (--resume, --force) are the pipeline's; here: a writable place, no stale temps
    check_out(args.out or cfg.out, kind="run.json", folder=True, force=True)
    result = run_pipeline(cfg, out=args.out, resume=args.resume, force=args.force, report=args.report,
                          progress=None if not args.json else False,
                          log=lambda s: print(s, file=sys.stderr, flush=True))
    emit(args, result.to_dict(), result.summary())
    return result


def run(args: argparse.Namespace) -> int:
    from ..errors import BadInputError
    from ..pipeline.config import builtin_text

    if args.print_config:
        sys.stdout.write(builtin_text(args.print_config))
        return 0
    if not args.config:
        raise BadInputError("give a CONFIG (a TOML file or a built-in name, e.g. `simplebits run small`); "
                            "`simplebits run --print-config demo > my.toml` prints one to start from")
    execute(args.config, args)
    return 0


def run_report(args: argparse.Namespace) -> int:
    from ..pipeline import write_report

    from ..errors import BadInputError

    if args.screenshot and not args.check:
        raise BadInputError("--screenshot needs --check (the screenshot is taken by the browser check)")
    from pathlib import Path

    if args.out:
        check_out(args.out, kind="html", force=args.force)
    if (Path(args.dir) / "sweep.json").is_file():  # a `simplebits sweep` folder
        from ..pipeline.report import write_sweep_report

        path = write_sweep_report(args.dir, path=args.out)
    else:
        path = write_report(args.dir, path=args.out)
    doc: dict = {"report": str(path)}
    text = f"wrote {path}"
    if args.check:
        from ..pipeline.browser import check_report

        res = check_report(path, screenshot=args.screenshot)
        ok = not res["broken"] and not res["overflow"] and res["scrollWidth"] <= res["clientWidth"]
        doc["check"] = {**res, "ok": ok}
        text += (f"\nbrowser check: {res['images']} images, {len(res['broken'])} broken, "
                 f"{len(res['overflow'])} overflowing elements -> {'ok' if ok else 'FAILED'}")
        if args.screenshot:
            text += f"; screenshot {args.screenshot}"
        emit(args, doc, text)
        return 0 if ok else 1
    emit(args, doc, text)
    return 0
