"""Data keys of roles/weights (role-prefixed; None = not set)."""

DEFAULTS = {
    # The hub client's venv on a node (the seed downloads with it); installed by pip when missing.
    "weights_client_venv": "/opt/ironserve/hub-client",
    "weights_client_packages": ["huggingface_hub==2.4.0", "modelscope==1.40.2"],
    # A PyPI mirror for that install (None: pip's default index).
    "weights_pip_index_url": None,
    # Free bytes a node must keep beyond the weights it still has to receive.
    "weights_disk_margin_bytes": 64 << 20,
    # Download attempts on the seed (a drop resumes, a corrupt file is fetched again).
    "weights_attempts": 4,
    # Node-side files: the pull script, and per group its config, token and fan-out key.
    "weights_script": "/opt/ironserve/weights-pull.py",
    "weights_config_dir": "/etc/ironserve/weights",
    # Where ironserve keeps each cluster's fan-out SSH key pair on the control machine.
    "weights_fanout_key_dir": "~/.ironserve/fanout",
}
