"""Shared plumbing for the LoRA SFT workshop notebooks (config, data, prompt, models, metrics)."""

import logging
import warnings

# bitsandbytes announces, on CPUs with AVX512-BF16, that an optional CPU 4-bit kernel package ("kernels")
# is missing. The workshop never runs 4-bit on CPU, so the warning only confuses participants.
logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)
# transformers 5 renamed gradient checkpointing to "activation checkpointing"; peft still calls the old names
# (gradient_checkpointing_enable, is_gradient_checkpointing) and each call prints a FutureWarning that
# participants cannot act on. Our own code uses the new names.
warnings.filterwarnings("ignore", message=r".*gradient_checkpointing.* is deprecated", category=FutureWarning)

from utils.recipe.config import ConfigError, WorkshopConfig, get_config
from utils.recipe.prompt import PROMPT_TEMPLATE, format_prompt, to_prompt_completion

__all__ = ["ConfigError", "WorkshopConfig", "get_config", "PROMPT_TEMPLATE", "format_prompt", "to_prompt_completion"]
