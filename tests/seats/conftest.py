from tests.control.harness import pbx

__all__ = ["pbx"]
