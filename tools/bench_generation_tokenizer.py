"""Steps of the shapes VQ-VAE trained when ``tokenizer_ckpt`` is missing vs its validation reconstruction MSE.

Trains ``train_tokenizer`` (the recipe of configs/generation/shapes_vqvae.yaml, architecture
``SHAPES_TOKENIZER_ARGS``, batches of 64) for each step count on the SyntheticShapes training split of the shapes
configs and prints the wall time, the validation reconstruction MSE (what ``TokenizerTask`` reports as
``val_recon_mse``), the codes used on the validation split and the accuracy of a judge (trained on the real
training split, ``train_judge``'s default recipe) on the validation reconstructions, next to its accuracy on the
real validation images: a reconstruction that keeps every shape and colour scores the same.
1125 steps = the 15 epochs of shapes_vqvae.yaml.

    python tools/bench_generation_tokenizer.py --threads 1 --steps 300 500 750 1125
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from visionkit.datamodules.generation.shapes import SyntheticShapes
from visionkit.tasks.generation.judge import train_judge
from visionkit.tasks.generation.tokenization import train_tokenizer


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--steps", type=int, nargs="+", default=[300, 500, 750, 1125])
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    dm = SyntheticShapes(image_size=16, colours=("red", "green", "blue"), batch_size=64)
    dm.setup("fit")
    x = torch.stack([dm.val_dataset[i]["image"] for i in range(len(dm.val_dataset))])
    y = torch.stack([dm.val_dataset[i]["label"] for i in range(len(dm.val_dataset))])
    judge = train_judge(dm.train_dataset, 3, dm.num_classes, progress=False)
    with torch.no_grad():
        real_acc = (judge(x).argmax(-1) == y).float().mean().item()
    print(f"all-black baseline: val MSE {float((x ** 2).mean()):.4f}; judge accuracy on real val images {real_acc:.3f}")
    for steps in args.steps:
        start = time.perf_counter()
        model = train_tokenizer(dm.train_dataset, steps=steps, progress=False)
        dt = time.perf_counter() - start
        with torch.no_grad():
            recon, codes, _ = model(x)
            acc = (judge(recon.clamp(0, 1)).argmax(-1) == y).float().mean().item()
        print(f"steps {steps:5d}  {dt:6.1f} s  val recon MSE {F.mse_loss(recon, x).item():.4f}  "
              f"codes used {codes.unique().numel()}/{model.vocab_size}  judge accuracy on reconstructions {acc:.3f}",
              flush=True)


if __name__ == "__main__":
    main()
