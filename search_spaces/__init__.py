"""The shipped search spaces (YAML files and their README), installed as the package ``tuner.search_spaces``.

The files stay in this top-level folder of the repository (its documented layout);
``pyproject.toml`` maps the package onto it, so wheels and editable installs both carry them
and ``tuner.space.load.spaces_dir()`` finds them through ``importlib.resources`` from any folder.
"""
