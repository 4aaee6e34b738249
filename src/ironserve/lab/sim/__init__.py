"""Simulated vendor tools of lab nodes (nvidia-smi, npu-smi, hccn_tool, ibstat, lspci, ...).

Every module here runs on the nodes with the system python3: stdlib only, no ironserve import.
Run as a script (``python3 nvidia_smi.py`` or as an installed copy such as /usr/bin/nvidia-smi)
a module makes its package importable as top-level ``sim`` first: from its own folder when it
sits in one named ``sim``, otherwise from /usr/lib/ironserve-sim (where the packages put it).
"""
