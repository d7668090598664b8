"""The seed page's examples, written as perceptspec specs (and one plain PyTorch model)."""
