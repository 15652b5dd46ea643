"""Everything that starts vLLM for the guard: serving profiles, launcher, stand-in model, container."""
