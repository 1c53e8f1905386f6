"""Vision-R1 workbench: the package the stage notebooks import.

One concept per module:
  params      YAML params files, composed and checked against the notebooks' parameters cells
  runner      runs the stage notebooks with papermill into outputs/<run>/
  env         keeps caches (HF, W&B, Jupyter, matplotlib) inside the project
  tiny_model  random-init Qwen2.5-VL with a locally trained tokenizer (offline)
  nano_task   the synthetic visual-math task (RL set, cold-start source set, test split)
  nano_base   the nano stand-in for an instruct model: short caption/direct-answer pretraining
  loaders     Vision-R1-rl (geometry3k parquet) and sharegpt/LLaMA-Factory datasets
"""

__version__ = "0.1.0"
