"""Negative Preference Optimisation (Zhang et al. 2024) with a retention term (as open-unlearning's NPO):
forget rows take ``2/beta * softplus(beta * (log pi - log pi_ref))`` against the model before unlearning,
retention rows ordinary NLL. beta 0.1."""

from eco_rails.unlearn.methods.base import UnlearnMethod

METHOD = UnlearnMethod(name="npo", summary="negative preference optimisation (beta 0.1) plus NLL on retention rows",
                       learning_rate=5e-5, retain_weight=1.0, trains_on_retain=True, needs_retain=True, npo=True)
