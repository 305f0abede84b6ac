"""The flow engine: graph, contexts, workers, trace bookkeeping and subflows.

Users import from `penguiflow` / `penguiflow.core`; these modules are the implementation.
"""
