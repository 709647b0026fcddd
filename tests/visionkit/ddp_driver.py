"""Run ``fit``, ``validate``, ``test`` and ``predict`` of one visionkit config in the same processes.

Usage: ``python ddp_driver.py OUT.json --config CONFIG.yaml [overrides...]`` (the CLI's options, no subcommand).
Under ``--trainer.strategy ddp`` Lightning re-executes this script once per extra process; all processes run
the four stages one after the other, and rank 0 writes the validation and test metrics to ``OUT.json``.
"""

from __future__ import annotations

import json
import sys
import time


def _floats(results: list[dict]) -> dict[str, float]:
    return {k: float(v) for d in results for k, v in d.items()}


def main(argv: list[str]) -> None:
    from visionkit.cli import VisionKitCLI, release_process_group
    from visionkit.plugins import import_builtins, load_plugins

    out, args = argv[0], argv[1:]
    times = {"start": time.time()}
    import_builtins()
    load_plugins()
    cli = VisionKitCLI(args=args, run=False)
    trainer, model, data = cli.trainer, cli.model, cli.datamodule
    times["built"] = time.time()
    trainer.fit(model, data)
    times["fit"] = time.time()
    val = trainer.validate(model, data)
    times["validate"] = time.time()
    test = trainer.test(model, data)
    times["test"] = time.time()
    pred = trainer.predict(model, data)
    times["predict"] = time.time()
    if trainer.is_global_zero:
        with open(out, "w") as f:
            json.dump({"val": _floats(val), "test": _floats(test), "predict_batches": len(pred or []),
                       "world_size": trainer.world_size, "log_dir": trainer.loggers[0].log_dir,
                       "seconds": {k: round(v - times["start"], 2) for k, v in times.items()}}, f)
    release_process_group()


if __name__ == "__main__":
    main(sys.argv[1:])
