"""perturbmax.numeric: fast perturbed-argmax probabilities (numpy + scipy only)."""
