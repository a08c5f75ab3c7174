"""The shared train loop, its state, optimizers and checkpoints."""
