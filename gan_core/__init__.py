"""GAN Workbook: reproducible GAN experiments, from YAML config to HTML report."""
from .config import Config, ConfigError, load
from .data import DataError, load_data
from .train import Trainer, TrainingError, train

__version__ = "0.1.0"
__all__ = ["Config", "ConfigError", "DataError", "Trainer", "TrainingError", "load", "load_data", "train"]
