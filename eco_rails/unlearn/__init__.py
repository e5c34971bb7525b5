"""Weight unlearning on LoRA adapters: MemFlex (Tian et al. 2024) and the gradient baselines (GA, GA+GD, NPO).

The weight-editing alternative to ECO's prompt corruption, with the same inputs (a base model, an adapter
that learned the data, forget and retention rows) and a PEFT adapter as output, which the ``eco``
provider serves like any other (``adapter:``). Pure math lives in :mod:`localize` and :mod:`losses`,
methods in the :mod:`methods` registry, the shared loop in :mod:`train`.
"""

from eco_rails.unlearn.data import UnlearnData, UnlearnDataError, load_pairs
from eco_rails.unlearn.methods import get_method, method_names
from eco_rails.unlearn.train import UnlearnError, UnlearnSettings, unlearn, unlearn_key, unlearning_info

__all__ = ["UnlearnData", "UnlearnDataError", "UnlearnError", "UnlearnSettings", "get_method", "load_pairs", "method_names",
           "unlearn", "unlearn_key", "unlearning_info"]
