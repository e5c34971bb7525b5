"""Gradient difference (GA+GD): ascent on forget rows, descent on retention rows, factors -1 / +1, every
LoRA tensor trainable (Liu et al. 2022; KnowUnDo's GA+GD baseline)."""

from eco_rails.unlearn.methods.base import UnlearnMethod

METHOD = UnlearnMethod(name="gd", summary="gradient difference: ascent on forget rows, descent on retention rows",
                       learning_rate=5e-5, forget_weight=-1.0, retain_weight=1.0, trains_on_retain=True, needs_retain=True)
