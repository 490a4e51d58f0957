"""Layer 4: rollout groups over agent x environment x task."""
