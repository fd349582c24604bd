"""espnet-train: Lightning training around the model contract."""

from .average import average_checkpoints
from .config import DataConfig, OptimConfig, TrainerConfig, TrainingConfig
from .contract import OptimizationStep
from .export import export_model_folder
from .module import LitESPnetModel
from .stats import collect_stats
from .train import train

__version__ = "0.1.0"

__all__ = [
    "DataConfig",
    "LitESPnetModel",
    "OptimConfig",
    "OptimizationStep",
    "TrainerConfig",
    "TrainingConfig",
    "average_checkpoints",
    "collect_stats",
    "export_model_folder",
    "train",
]
