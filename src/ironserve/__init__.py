"""ironserve: from an inventory of bare-metal GPU/NPU servers to a serving LLM cluster."""

__version__ = "0.1.0"
