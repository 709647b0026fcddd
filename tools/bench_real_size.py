"""Cost of a few training steps of every real-dataset config at real per-sample size, on this machine.

Writes fake data in the exact on-disk formats at the real per-sample sizes (``tools/fake_data.py``: DOTA
1024 x 1024 patches with 100-300 objects, RSAR and DIOR-R 800 x 800 images, ModelNet40 / ScanObjectNN h5 clouds
of 2048 points, ShapeNetPart shapes of 2800 points, ETH-UCY scenes with 20-40 pedestrians over ~24 m, MD17 at
the real atom and frame counts, H3.6M files of 2000 frames, InterHand2.6M JSON + 334 x 512 JPEGs, an ImageNet
folder of 256 x 256 JPEGs), then runs ``fit`` of each config for a few steps at its configured batch size, one
config per subprocess, and reports:

* ``to first step``: CPU seconds of the process (and wall seconds) from its start to the end of the first
  training step (imports, model construction, dataset set-up including any caching, the first step);
* ``s/step``: mean CPU seconds (and wall seconds) of the following steps; on a shared machine the CPU time is
  the figure to read, the wall time grows with the load;
* ``peak RSS``: the subprocess's peak resident memory (``wait4``), data loaded in the main process
  (``num_workers 0``; each worker adds its own copy of the dataset's Python objects).

Runs on the CPU in float32 (``--precision bf16-mixed``: CPU autocast) with ``--threads`` intra-op threads
(default 1); with ``--gpu`` on one GPU in the
config's precision, adding the peak GPU memory allocated (the CPU time is then the host's share). Configs that
may need more than 4 GB run under an exclusive ``flock`` of ``/tmp/bigmem.lock`` (the machine is shared), unless
``--max-rss-gb`` bounds every run (a run passing the bound is killed and reported). The
models are built from scratch (no pretrained weights); the data are random, so only costs are meaningful, never
accuracies.
ImageNet: the VQ tokenizer the config expects is stood in by a ``TokenizerTask`` trained for one step on the
fake folder (16x downsampling, the config's 256 px -> 16 x 16 codes).

    python tools/bench_real_size.py                     # all configs, 3 steps each
    python tools/bench_real_size.py --only obb/dota_v1.yaml motion/h36m.yaml --steps 4
    python tools/bench_real_size.py --only generation/imagenet_nar.yaml --steps 2 --batch-size 4
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import lightning.pytorch as pl

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
import fake_data as fake  # noqa: E402

LOCK = "/tmp/bigmem.lock"


class StepTimer(pl.Callback):
    """Wall time of every training step; writes ``{"first": s, "steps": [s, ...]}`` to ``$BENCH_RESULT``."""

    def __init__(self) -> None:
        self.t0 = self.c0 = 0.0
        self.steps: list[float] = []
        self.cpu: list[float] = []
        self.first = self.first_cpu = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.t0, self.c0 = time.perf_counter(), time.process_time()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        now, cpu = time.perf_counter(), time.process_time()
        if self.first is None:
            self.first = time.time() - float(os.environ.get("BENCH_T0", time.time()))
            self.first_cpu = cpu  # CPU seconds of the process so far
        self.steps.append(now - self.t0)
        self.cpu.append(cpu - self.c0)

    def on_train_end(self, trainer, pl_module) -> None:
        import torch

        gpu = torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else None
        Path(os.environ["BENCH_RESULT"]).write_text(json.dumps(
            {"first": self.first, "first_cpu": self.first_cpu, "steps": self.steps, "cpu": self.cpu, "gpu_gb": gpu}))


# ------------------------------------------------------------------------------------------------ data
def _data(**kw) -> list[str]:
    return [a for k, v in kw.items() for a in (f"--data.init_args.{k}", str(v))]


def _model(**kw) -> list[str]:
    return [a for k, v in kw.items() for a in (f"--model.init_args.{k}", str(v))]


def _once(folder: Path, write: Callable[[Path], object]) -> Path:
    """Write a dataset once (a ``.done`` marker makes later runs reuse it)."""
    if not (folder / ".done").exists():
        t = time.perf_counter()
        write(folder)
        (folder / ".done").write_text("")
        print(f"wrote {folder} in {time.perf_counter() - t:.0f} s", flush=True)
    return folder


MD17_FRAMES = {"aspirin": 211762, "benzene": 627983, "ethanol": 555092, "malonaldehyde": 993237,
               "naphthalene": 326250, "salicylic": 320231, "toluene": 442790, "uracil": 133770}


def _md17(mol: str) -> Callable[[Path], list[str]]:
    def write(d: Path) -> list[str]:
        root = _once(d / f"md17_{mol}", lambda r: fake.write_md17(r, [mol], frames=MD17_FRAMES[mol]))
        return _data(root=root)
    return write


def _imagenet(d: Path) -> list[str]:
    root = _once(d / "imagenet", lambda r: fake.write_image_folder(r, classes=8, per_class=40, size=256))
    ckpt = d / "imagenet_vq" / "checkpoints" / "last.ckpt"
    if not ckpt.exists():
        subprocess.run([sys.executable, "-m", "visionkit", "fit", "--model", "TokenizerTask",
                        "--model.init_args.downsample", "16", "--data", "ImageFolder", *_data(root=root, batch_size=8),
                        "--trainer.max_steps", "1", "--trainer.limit_val_batches", "0", "--trainer.logger", "false",
                        "--trainer.accelerator", "cpu", "--trainer.default_root_dir", str(d / "imagenet_vq")],
                       check=True, env=_env(1))
    return _data(root=root, tokenizer_ckpt=ckpt) + _model(tokenizer_ckpt=ckpt)


def _interhand(d: Path) -> list[str]:
    root = _once(d / "InterHand2.6M", lambda r: fake.write_interhand(r, frames=24, cameras=4))
    return _data(root=root) + _model(mano_dir=_once(d / "mano", fake.write_mano))


WRITERS: dict[str, tuple[Callable[[Path], list[str]], bool]] = {
    # name: (writer returning the overrides, big = may need more than 4 GB)
    "obb/dota_v1.yaml": (lambda d: _data(root=_once(d / "dota", lambda r: fake.write_dota(
        r, n_images=8, size=1024, objects=(100, 300), point_dir="points"))), True),
    "obb/pointobb_dota_v1.yaml": (lambda d: _data(root=_once(d / "dota", lambda r: fake.write_dota(
        r, n_images=8, size=1024, objects=(100, 300), point_dir="points"))), True),
    "obb/rsar.yaml": (lambda d: _data(root=_once(d / "RSAR", lambda r: fake.write_rsar(
        r, n_images=8, size=800, objects=(2, 30)))), True),
    "obb/pointobb_dior_r.yaml": (lambda d: _data(root=_once(d / "DIOR-R", lambda r: fake.write_dior_r(
        r, n_images=8, size=800, objects=(5, 60), point_dir="points"))), True),
    "pointcloud/modelnet40_so3_so3.yaml": (lambda d: _data(root=_once(d / "modelnet40", lambda r: (
        fake.write_modelnet40_h5(r, num_train=256, num_test=64, points=2048)))), True),
    "pointcloud/modelnet40_z_so3.yaml": (lambda d: _data(root=_once(d / "modelnet40", lambda r: (
        fake.write_modelnet40_h5(r, num_train=256, num_test=64, points=2048)))), True),
    "pointcloud/scanobjectnn.yaml": (lambda d: _data(root=_once(d / "scanobjectnn", lambda r: (
        fake.write_scanobjectnn(r, num_train=256, num_test=64, points=2048)))), True),
    "pointcloud/shapenetpart_z_so3.yaml": (lambda d: _data(root=_once(d / "shapenetpart", lambda r: (
        fake.write_shapenetpart(r, per_split=64, points=2800)))), True),
    **{f"motion/eth_ucy_{s}.yaml": (lambda d: _data(root=_once(d / "eth_ucy", lambda r: fake.write_eth_ucy(
        r, frames=400, peds=(20, 40), extent=24.0))), False) for s in fake.ETH_UCY_SCENES},
    "motion/h36m.yaml": (lambda d: _data(root=_once(d / "h36m", lambda r: fake.write_h36m(r, frames=2000))), False),
    **{f"motion/md17_{m}.yaml": (_md17(m), False) for m in fake.MD17_ATOMS},
    "hands/interhand26m.yaml": (_interhand, True),
    "generation/imagenet_nar.yaml": (_imagenet, True),
}


# ------------------------------------------------------------------------------------------------ runs
def _env(threads: int) -> dict[str, str]:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), HF_HUB_OFFLINE="1")
    return env


@contextlib.contextmanager
def _bigmem(big: bool) -> Iterator[None]:
    if not big:
        yield
        return
    with open(LOCK, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _rss_gb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return 0.0


def _watch(proc: subprocess.Popen, limit_gb: float, hit: list[float]) -> None:
    """Kill ``proc`` as soon as its resident memory passes ``limit_gb``."""
    while proc.returncode is None:
        rss = _rss_gb(proc.pid)
        if rss > limit_gb:
            hit.append(rss)
            proc.kill()
            return
        time.sleep(0.1)


def run_config(name: str, data_dir: Path, steps: int, threads: int, timeout: float,
               batch_size: int | None = None, gpu: bool = False, max_rss_gb: float | None = None,
               precision: str = "32") -> dict:
    """Run ``steps`` training steps of one config in a subprocess; returns times and peak RSS.

    With ``max_rss_gb`` the run is killed when its resident memory passes that bound, and takes no lock.
    ``precision`` is the CPU run's ``trainer.precision`` (``"bf16-mixed"`` runs under CPU autocast).
    """
    write, big = WRITERS[name]
    big = big and max_rss_gb is None
    overrides = write(data_dir) + (_data(batch_size=batch_size) if batch_size else [])
    out = data_dir / "results" / name.replace("/", "__").replace(".yaml", ".json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)
    args = ["fit", "--config", str(REPO / "configs" / name), *overrides,
            "--trainer.max_steps", str(steps), "--trainer.max_epochs", "-1", "--trainer.limit_val_batches", "0",
            "--trainer.num_sanity_val_steps", "0", "--trainer.logger", "false",
            "--trainer.enable_checkpointing", "false", "--trainer.devices", "1", "--trainer.strategy", "auto",
            *(["--trainer.accelerator", "gpu"] if gpu else
              ["--trainer.accelerator", "cpu", "--trainer.precision", precision]),
            "--data.init_args.num_workers", "0",
            "--trainer.default_root_dir", str(data_dir / "runs" / name.replace("/", "__")),
            "--trainer.callbacks+=bench_real_size.StepTimer"]
    env = _env(threads)
    env["BENCH_RESULT"] = str(out)
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parent), env.get("PYTHONPATH", "")])
    err_file = out.with_suffix(".stderr")
    with _bigmem(big), open(err_file, "w") as ef:
        t = time.perf_counter()
        env["BENCH_T0"] = repr(time.time())
        proc = subprocess.Popen([sys.executable, __file__, "--child", str(threads), *args], env=env,
                                stdout=subprocess.DEVNULL, stderr=ef)
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
        hit: list[float] = []
        if max_rss_gb is not None:
            threading.Thread(target=_watch, args=(proc, max_rss_gb, hit), daemon=True).start()
        _, status, usage = os.wait4(proc.pid, 0)  # reaps the child: its own peak RSS
        timer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - t
    err = err_file.read_text()
    rss_gb = usage.ru_maxrss / 2**20  # kB on Linux
    res = {"config": name, "wall_s": round(wall, 1), "peak_rss_gb": round(rss_gb, 2), "ok": out.exists()}
    if out.exists():
        r = json.loads(out.read_text())
        rest, rest_cpu = r["steps"][1:] or r["steps"], r["cpu"][1:] or r["cpu"]
        res.update(first_step_s=round(r["first"], 1), first_step_cpu_s=round(r["first_cpu"], 1),
                   s_per_step=round(sum(rest) / len(rest), 2), cpu_s_per_step=round(sum(rest_cpu) / len(rest_cpu), 2),
                   steps=len(r["steps"]), gpu_peak_gb=r.get("gpu_gb"))
    else:
        res["error"] = ([f"stopped above the {max_rss_gb} GB bound"] if hit else
                        err.strip().splitlines()[-1:] or [f"exit status {proc.returncode}"])
    return res


def _child(threads: int, args: list[str]) -> None:
    import torch

    torch.set_num_threads(threads)
    from visionkit.cli import main

    main(args)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", type=Path, default=Path("/tmp/visionkit_real_size"))
    p.add_argument("--only", nargs="*", default=None, help="config names relative to configs/")
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--timeout", type=float, default=1800.0, help="seconds per config")
    p.add_argument("--batch-size", type=int, default=None, help="override the configured batch size")
    p.add_argument("--max-rss-gb", type=float, default=None,
                   help="kill a run whose resident memory passes this bound (such runs take no lock)")
    p.add_argument("--gpu", action="store_true", help="run on one GPU with the config's precision (not float32)")
    p.add_argument("--precision", default="32", help="trainer.precision of CPU runs, e.g. bf16-mixed (default 32)")
    a = p.parse_args()
    names = a.only or list(WRITERS)
    bad = [n for n in names if n not in WRITERS]
    if bad:
        raise SystemExit(f"not a real-dataset config here: {bad}; known: {list(WRITERS)}")
    where = "one GPU, the config's precision" if a.gpu else f"CPU, precision {a.precision}"
    print(f"torch threads {a.threads}, {a.steps} steps per config, {where}", flush=True)
    print("| config | batch | to first step: CPU s (wall s) | CPU s/step (wall) | peak RSS (GB) |\n"
          "|---|---|---|---|---|", flush=True)
    results = []
    for name in names:
        r = run_config(name, a.data_dir, a.steps, a.threads, a.timeout, a.batch_size, a.gpu, a.max_rss_gb,
                       a.precision)
        results.append(r)
        import yaml

        batch = a.batch_size or yaml.safe_load((REPO / "configs" / name).read_text())["data"]["init_args"].get(
            "batch_size")
        if r["ok"]:
            gpu_mem = f" (GPU {r['gpu_peak_gb']:.2f})" if r.get("gpu_peak_gb") is not None else ""
            print(f"| {name} | {batch} | {r['first_step_cpu_s']} ({r['first_step_s']}) | {r['cpu_s_per_step']} "
                  f"({r['s_per_step']}) | {r['peak_rss_gb']}{gpu_mem} |", flush=True)
        else:
            print(f"| {name} | {batch} | failed: {r['error'][0][:150]} | | {r['peak_rss_gb']} |", flush=True)
        with open(a.data_dir / "results.jsonl", "a") as fh:
            fh.write(json.dumps({**r, "time": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                                 "threads": a.threads}) + "\n")


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        _child(int(sys.argv[2]), sys.argv[3:])
    else:
        main()
