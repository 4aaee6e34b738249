"""Serving: what deploys/serve.py needs beyond the Plan.

The image pinned to a digest on the control machine (:mod:`registry`), the API key
(:mod:`apikey`), container specs labelled with their hash (:mod:`spec`), the Ray cluster as
``ray status`` shows it (:mod:`ray_status`) and the progress-aware readiness wait
(:mod:`readiness`). Pure functions and small clients; roles/engine runs them.
"""
