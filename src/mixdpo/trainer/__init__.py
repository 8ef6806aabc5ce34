"""Training: ``MixDPOConfig`` (TrainingArguments + the method's options) and ``MixDPOTrainer``."""

from mixdpo.trainer.config import MixDPOConfig
from mixdpo.trainer.mixdpo_trainer import MixDPOTrainer
from mixdpo.trainer.schedule import ObjectiveSchedule

__all__ = ["MixDPOConfig", "MixDPOTrainer", "ObjectiveSchedule"]
