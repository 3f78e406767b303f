"""The contract between a run and everything that steers or watches it.

Commands come in (``commands``), events go out (``events``), the run is in one of the
states of ``state``, and the learning-rate plan travels as a value (``schedule``) that any
viewer can call. Nothing here imports torch, Textual or the run itself, so a dashboard, a
log reader or another process can depend on it alone.
"""
