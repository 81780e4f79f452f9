"""The IPython extension: ``%load_ext jupyter_iotcable`` gives ``%iot`` and ``%%iot``.

``commands.py`` parses what the user types and ``completion.py`` decides what Tab offers
(both pure); ``magics.py`` is the only module here that imports IPython. The package's
``load_ipython_extension`` imports them only when the extension is loaded, so that
``import jupyter_iotcable`` stays fast.
"""
