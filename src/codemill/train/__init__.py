"""Layer 4: RL updates and checkpoints."""
