"""One command from model to deployable bundle: config, stages, runner and report."""

from eftnas_deploy.app.pipeline.config import PipelineConfig, load_config
from eftnas_deploy.app.pipeline.runner import STAGES, read_state, run_pipeline

__all__ = ["STAGES", "PipelineConfig", "load_config", "read_state", "run_pipeline"]
