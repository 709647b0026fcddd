"""Neighboring-autoregressive and raster image generation."""

from visionkit.tasks.generation.autoregressive import AutoregressiveGenerationTask
from visionkit.tasks.generation.judge import JudgeClassifier, JudgeTask, load_judge, save_judge
from visionkit.tasks.generation.ordering import Ordering, make_ordering
from visionkit.tasks.generation.tokenization import TokenizerTask, load_tokenizer
from visionkit.tasks.generation.tokenizers import VQVAE, PixelQuantizer, VectorQuantizer
from visionkit.tasks.generation.transformer import ARTransformer

__all__ = [
    "ARTransformer",
    "AutoregressiveGenerationTask",
    "JudgeClassifier",
    "JudgeTask",
    "Ordering",
    "PixelQuantizer",
    "TokenizerTask",
    "VQVAE",
    "VectorQuantizer",
    "load_judge",
    "load_tokenizer",
    "make_ordering",
    "save_judge",
]
