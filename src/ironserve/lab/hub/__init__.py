"""The lab model hub: a stand-in for huggingface.co and modelscope.cn on the lab network.

``server`` and ``repos`` use the standard library only: the hub runs inside the lab's base image
(Debian's python3, this folder bind-mounted as the package ``labhub``) as well as in-process in
tests. ``control`` (httpx), ``service`` (docker SDK) and ``cli`` (typer) run on the host.
"""
