from engine.registry import Registry

METHODS = Registry("method")
register_method = METHODS.register
