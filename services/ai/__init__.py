"""AI jobs on top of ml/: what the API offers (jobs.py, training.py), where the work runs (the
embedded runner or Celery: backends.py, worker.py, celery_app.py, training_run.py), how the
world hears of it (events.py), what a restart repairs (recovery.py), the app's lifetime
(runtime.py), and the models that read the database (apps.py: similar_posts.py,
board_suggest.py, trained.py), named in registry.py.

Importing this package loads no torch: a model's weights load on its first batch (or when a
worker starts), once per process.
"""
