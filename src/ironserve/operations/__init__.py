"""pyinfra operations that pyinfra lacks: idempotent apt installs with pins and holds, a
``daemon.json`` merge that never clobbers, NVIDIA check-then-change steps, and the template
renderer the roles share (the package data ironserve/templates/<role>/*.j2).
"""
