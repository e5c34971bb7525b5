"""Gradient ascent (GA): raise the NLL of the forget rows, nothing else (Jang et al. 2023).
Unbounded, so it tends to wreck the model; retention rows only choose the checkpoint."""

from eco_rails.unlearn.methods.base import UnlearnMethod

METHOD = UnlearnMethod(name="ga", summary="gradient ascent on the forget rows", learning_rate=5e-5, forget_weight=-1.0)
