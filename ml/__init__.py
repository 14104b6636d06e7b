"""PyTorch and nothing else: the sentence encoder and its model processes, the models' base
(base.py, embedding.py, post_index.py), the tabular network and its training loop (tabular.py,
train_process.py, training.py), and the batching runner (runner.py).

This package imports nothing of the app (no settings, database, models, services or routers):
what it needs comes in as arguments, and its callbacks go out through plain callables (the
runner's `Lane`). Importing it loads no torch: weights load on first use, once per process.
"""
