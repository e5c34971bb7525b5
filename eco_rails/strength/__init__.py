"""Learning the corruption strength offline (``eco-rails optimize``): ``search`` is the pure zeroth-order
search; ``optimize`` is its objective on a rails config's policy and the manifest update."""
