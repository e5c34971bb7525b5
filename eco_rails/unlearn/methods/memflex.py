"""MemFlex (Tian et al. 2024): localise the knowledge with randomised-answer gradients
(:mod:`eco_rails.unlearn.localize`), then train only the selected LoRA tensors with weighted ascent on
unlearn rows (-0.4) and descent on retention rows (+2.0), lr 3e-4."""

from eco_rails.unlearn.methods.base import UnlearnMethod

METHOD = UnlearnMethod(name="memflex", summary="gradient-localised unlearning: weighted ascent/descent on selected LoRA tensors",
                       learning_rate=3e-4, forget_weight=-0.4, retain_weight=2.0, trains_on_retain=True, needs_retain=True,
                       localised=True)
