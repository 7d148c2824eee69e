"""GAN Workbook: reproducible GAN and diffusion experiments, from YAML config to HTML report.

Importing the package loads nothing heavy. Its layers import downward only:
config, rundir, paths <- data <- models <- training, evaluation <- analysis <- reporting
<- orchestration <- cli.
"""
__version__ = "0.2.0"
