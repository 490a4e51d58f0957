"""Layer 3: task mining, synthesis and validation."""
