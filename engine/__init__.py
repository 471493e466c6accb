"""SegLab engine: pure PyTorch data, models, semi-supervised methods, metrics and trainer.

Nothing under engine/ imports django, celery, webapp or workers; `python -m engine`
trains without a database or a broker.
"""
