"""Benchmarks of the retry pipeline (issue 5): one module per figure, run by ``python -m bench.run``.

Every figure is a ratio against a baseline measured in the same run, against the local VideoDB
sandbox on loopback and AWS emulated in-process (moto, or canned answers where moto's own
overhead would dominate). Nothing here reaches the network beyond 127.0.0.1, except ``sam build``
(figure 6), which installs the layer's requirements from the package registry as ``sam build``
always does.
"""
