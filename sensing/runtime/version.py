"""The version of footfall, as status payloads and ``footfall --version`` report it."""

__version__ = "0.1.0"
