"""Deploy file for the lab tests: roles/vastai on every host of inventories/lab.py."""

from ironserve.roles.vastai import deploy_vastai

deploy_vastai()
