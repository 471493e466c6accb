from engine.registry import Registry

MODELS = Registry("architecture")
register_model = MODELS.register
