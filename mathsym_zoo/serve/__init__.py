"""``mathsym-zoo serve``: draw a symbol in the browser, see the zoo's top-k answer with its LaTeX.

``app`` holds the Starlette app and the JSON API, ``models`` which runs are
offered (loaded once, on first use), ``payloads`` the request bodies and their
limits, ``samples`` how contributed drawings are saved, ``static/`` the page and
the vendored KaTeX. Strokes are rendered by :mod:`mathsym_zoo.ink`, the
renderer of the ``demo`` source, so the model sees what the dataset looks like.
"""
