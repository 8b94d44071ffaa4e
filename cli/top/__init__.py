"""`meshkp top`: a live terminal view of the cluster (issue 10, "A live view").

collect.py polls the nodes in a thread, model.py turns replies into rows (pure functions,
unit-tested), render.py draws one frame with rich, keys.py reads keys without blocking, and
command.py is the click command that runs the loop.
"""
