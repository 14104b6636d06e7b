"""Models and how they run: the registry of named models, the sentence encoder they share,
the batching runner of the API process and the Celery worker backend (DESIGN.md §4, §5).

Importing this package loads no torch: a model's weights load on its first batch (or when a
worker starts), once per process.
"""
