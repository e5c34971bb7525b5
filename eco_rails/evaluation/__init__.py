"""``eco-rails eval``: ``mcq_data`` (rows in our and TOFU's formats), ``scoring`` (choice likelihoods,
answer probability, truth ratio, perplexity) and ``evaluate`` (the per-group report, baselines, chart)."""
