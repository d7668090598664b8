"""Forward-pass microbenchmarks: perceptspec side by side with hand-written PyTorch, in one process."""
