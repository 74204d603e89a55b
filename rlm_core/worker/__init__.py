"""The REPL worker: the program that runs inside the sandbox process (standard library only).

Started by ``rlm_core.launch`` as ``python -I -S -B <this directory>/__main__.py
<config-json>``. Isolated mode puts nothing but the standard library on ``sys.path``, so these
modules import nothing outside the standard library and this package; the host imports
``framing`` from here too, so both ends share one definition of the frame format.

- ``lockdown``: confinement of the process (namespaces, Landlock, limits, uid drop);
- ``framing``: length-prefixed JSON frames over the pipe to the host;
- ``repl``: the namespace model code runs in and the helpers bound into it;
- ``__main__``: start-up order and the request loop.
"""
