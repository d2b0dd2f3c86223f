"""The self-improvement loop: rounds of label search, training, serving and evaluation."""
