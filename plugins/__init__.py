"""Built-in mathsym-zoo plugins, installed as ``mathsym_zoo_plugins``.

Each module registers its components through the ``mathsym_zoo`` entry-point
group (see pyproject.toml), the same road third-party plugins take.
"""
