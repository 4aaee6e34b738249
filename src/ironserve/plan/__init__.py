"""The serving planner: sizing (memory, parallelism, capacity) in ``sizing``, per-node launches
in ``plan``. Import from the submodules; this package imports nothing so that the engine
builders can use the plan types without a cycle."""
